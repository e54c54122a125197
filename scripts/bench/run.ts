/**
 * Runs every benchmark and writes docs/benchmarks.md.
 *
 *   npm run bench                      # full run (minutes), rewrites docs/benchmarks.md
 *   npm run bench -- --quick --out F   # smoke run (seconds) into F
 *
 * Needs Postgres (BENCH_ADMIN_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 * bench databases are created and dropped) and NATS with JetStream (NATS_URL,
 * default nats://127.0.0.1:4222; each server gets its own stream, deleted after).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchDecision } from "./decision.js";
import { admin, createBenchDatabase, seedProject, serverEnv } from "./fixtures.js";
import { benchStartup } from "./footprint.js";
import { benchGate } from "./gate.js";
import { FULL, QUICK } from "./load.js";
import { benchNotify } from "./notify.js";
import { type BenchReport, type Outcome, renderReport } from "./report.js";
import { benchScale } from "./scale.js";
import { startServerProcess } from "./server-process.js";
import { benchSignal, deleteStream } from "./signal.js";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, out: { type: "string" } } });
const settings = values.quick ? QUICK : FULL;
const out = values.out ?? (values.quick ? join(tmpdir(), "releasegate-bench-quick.md") : "docs/benchmarks.md");
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function attempt<T>(name: string, run: () => T | Promise<T>): Promise<Outcome<T>> {
  log(`${name}…`);
  try {
    return { ok: true, value: await run() };
  } catch (err) {
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    log(`${name} failed: ${error}`);
    return { ok: false, error };
  }
}

const started = Date.now();
const loadAtStart = loadavg().map((l) => l.toFixed(1)).join("/");
const dataDir = mkdtempSync(join(tmpdir(), "rg-bench-run-"));

// First, while this process's heap and JIT hold nothing of the load sections.
const decision = await attempt("5 decision", () => benchDecision(settings));

// Sections 1 and 2 share one server on Postgres with NATS, as deployed.
const database = await createBenchDatabase();
const { env, stream } = serverEnv(database.url, dataDir, natsUrl);
const server = await attempt("server on Postgres + NATS", () => startServerProcess(env));
const notRun = server.ok ? ({ ok: false, error: "not run" } as const) : server;
let gate: BenchReport["gate"] = notRun;
let signal: BenchReport["signal"] = notRun;
let gatePeakRssBytes: BenchReport["gatePeakRssBytes"] = notRun;
if (server.ok) {
  const { baseUrl } = server.value;
  const seeded = await attempt("seed", () => seedProject(baseUrl, "gate"));
  const withRules = await attempt("seed with rules", () => seedProject(baseUrl, "gate-rules", true));
  if (seeded.ok) {
    gate = withRules.ok ? await attempt("1 EvaluatePolicies and ApproveRelease vs health Check", () => benchGate(settings, baseUrl, seeded.value, withRules.value)) : withRules;
    signal = await attempt("2 signal", () => benchSignal(settings, baseUrl, seeded.value, { url: natsUrl, stream }));
    gatePeakRssBytes = { ok: true, value: server.value.peakRssBytes() };
  } else gate = signal = gatePeakRssBytes = seeded;
  await server.value.stop();
}
await database.drop();
await deleteStream(natsUrl, stream).catch(() => undefined);

const notify = await attempt("6 webhook delivery vs outbox relay", () => benchNotify(settings, natsUrl));
const scale = await attempt("3 scale", () => benchScale(settings, natsUrl, dataDir));
const made = server.ok ? [{ kind: "Postgres + NATS, empty database (migrations run): the server of sections 1 and 2", ms: server.value.startupMs }] : [];
const startup = await attempt("4 start-up", () => benchStartup(settings, join(dataDir, "pglite"), made));
rmSync(dataDir, { recursive: true, force: true });

const machine = {
  date: new Date(started).toISOString(),
  command: `npm run bench${values.quick ? " -- --quick" : ""} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  cpu: `${availableParallelism()} × ${cpus()[0]?.model ?? "?"}`,
  memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
  node: process.version,
  postgres: String((await admin("show server_version")).rows[0]?.server_version),
  "server, Postgres, NATS and load generator": "all on this machine, over 127.0.0.1; the load generator is @grpc/grpc-js (closed loop)",
  "load average (1/5/15 min) at start → end": `${loadAtStart} → ${loadavg().map((l) => l.toFixed(1)).join("/")} (above ${availableParallelism()}, other work competed for the CPU)`,
  medians: `of ${settings.runs} alternating run(s) per figure, ${settings.loadMs} ms each, after ${settings.warmupMs} ms of uncounted load per RPC`,
};
writeFileSync(out, `${renderReport({ machine, gate, signal, scale, gatePeakRssBytes, startup, decision, notify })}\n`);
log(`wrote ${out}`);
