/**
 * One RPC under load against a freshly spawned server on Postgres + NATS, for
 * digging into a number of docs/benchmarks.md (not part of `npm run bench`):
 *
 *   npm run build && node dist/scripts/bench/load-one.js approve|evaluate|health [callers=16] [runs=3]
 *   BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node dist/scripts/bench/load-one.js evaluate 16
 *
 * Prints per run: throughput, p50/p99, and CPU time per call of the server,
 * the load generator, every Postgres process and the whole machine (from
 * /proc: less sensitive to other work on the machine than throughput).
 */
import { randomBytes } from "node:crypto";
import {
  approveSeeded,
  BENCH_JWT_SECRET,
  BENCH_POOL_SIZE,
  createBenchDatabase,
  evaluateSeeded,
  loadCaller,
  registerIntents,
  seedProject,
} from "./fixtures.js";
import type { GrpcJsCaller } from "./grpc-js-caller.js";
import { healthCheck } from "./health-service.js";
import { runLoadOn } from "./load.js";
import { startServerProcess } from "./server-process.js";

const [rpc = "evaluate", callersArg = "16", runsArg = "3"] = process.argv.slice(2);
const callers = Number(callersArg);
const runs = Number(runsArg);
if (!["approve", "evaluate", "health"].includes(rpc) || !(callers > 0) || !(runs > 0)) {
  process.stderr.write("usage: load-one.js approve|evaluate|health [callers] [runs]\n");
  process.exit(2);
}
const RUN_MS = 3_000;
const WARMUP_PER_CALLER = 4;
/** Voters and intents of the approve load, as in section 2 (approve.ts). */
const VOTERS = 32;
const INTENTS = 64;

const database = await createBenchDatabase();
const suffix = randomBytes(4).toString("hex");
const server = await startServerProcess({
  RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET,
  DATABASE_URL: database.url,
  DB_POOL_SIZE: String(BENCH_POOL_SIZE),
  DATA_DIR: `/tmp/rg-load-one-${suffix}`,
  NATS_URL: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
  NATS_STREAM: `RG_LOAD_ONE_${suffix}`,
  NATS_SUBJECT_PREFIX: `rgloadone${suffix}.approvals`,
});
try {
  const seeded = await seedProject(server.baseUrl, "gate");
  let call: (i: number) => Promise<unknown>;
  if (rpc === "approve") {
    const intents = await registerIntents(server.baseUrl, seeded.project, INTENTS);
    const voters = await Promise.all(Array.from({ length: VOTERS }, (_, i) => loadCaller(server.baseUrl, `voter-${i}`)));
    call = (i) => approveSeeded(voters[Math.floor(i / INTENTS) % VOTERS] as GrpcJsCaller, seeded, intents[i % INTENTS] as string);
  } else {
    const caller = await loadCaller(server.baseUrl, "bench-pipeline");
    call = rpc === "health" ? healthCheck(caller) : evaluateSeeded(caller, seeded);
  }
  for (let r = 0; r < runs; r++) {
    const res = await runLoadOn(
      server,
      { callers, durationMs: RUN_MS, maxCalls: 1_000_000, warmupCalls: callers * WARMUP_PER_CALLER },
      call,
    );
    console.log(
      `${rpc} × ${callers}: ${Math.round(res.throughput)}/s p50 ${res.p50.toFixed(2)} ms p99 ${res.p99.toFixed(2)} ms, CPU ms/call: server ${res.serverCpuMsPerCall?.toFixed(2)}, load generator ${res.loadGeneratorCpuMsPerCall.toFixed(2)}, Postgres ${res.postgresCpuMsPerCall.toFixed(2)}, machine ${res.machineCpuMsPerCall.toFixed(2)}; errors ${res.errors}${res.firstError ? ` (${res.firstError})` : ""}`,
    );
  }
  console.log(`server peak RSS ${(server.peakRssBytes() / 1024 / 1024).toFixed(0)} MB`);
} finally {
  await server.stop();
  await database.drop();
}
