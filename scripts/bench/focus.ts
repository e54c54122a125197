/**
 * The two figures issue 12 sets lines for, alone and fast, optionally next to
 * a baseline build (interleaved, so both see the same machine):
 * - section 1's EvaluatePolicies rows (plain and with three rules) against the
 *   health Check at 16 callers;
 * - section 3's EvaluatePolicies p50 at 1k rows and at `--rows` (default 100k).
 *
 *   npm run build && node dist/scripts/bench/focus.js [--baseline DIR/dist/src/main.js] [--rows 100000]
 *
 * Prints a Markdown table to stdout; writes nothing else (docs/benchmarks.md
 * stays the full run's). Needs what run.ts needs (Postgres, NATS).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { createBenchDatabase, evaluateSeeded, healthCheck, loadCaller, type SeededProject, seedProject, serverEnv } from "./fixtures.js";
import type { GrpcJsCaller } from "./grpc-js-caller.js";
import { alternatingMedians, type LoadOptions, type LoadResult, median, runLoad } from "./load.js";
import { growTo } from "./scale.js";
import { processCpuSeconds, type ServerProcess, startServerProcess } from "./server-process.js";
import { deleteStream } from "./signal.js";

const { values } = parseArgs({
  options: {
    baseline: { type: "string" },
    rows: { type: "string", default: "100000" },
    runs: { type: "string", default: "5" },
    "load-ms": { type: "string", default: "2000" },
    "warmup-ms": { type: "string", default: "5000" },
    skip: { type: "string", default: "" },
  },
});
const RUNS = Number(values.runs);
const LOAD_MS = Number(values["load-ms"]);
const WARMUP_MS = Number(values["warmup-ms"]);
const LARGE = Number(values.rows);
const skip = new Set(values.skip.split(",").filter((s) => s !== ""));
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const MAX_CALLS = 200_000;

function log(message: string): void {
  process.stderr.write(`[focus ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

interface Variant {
  readonly label: string;
  readonly main?: string;
}
const variants: Variant[] = [{ label: "this tree" }, ...(values.baseline !== undefined ? [{ label: "baseline", main: values.baseline }] : [])];

interface Running {
  readonly server: ServerProcess;
  readonly database: { url: string; drop(): Promise<unknown> };
  readonly stream: string;
}

/**
 * CPU time per call (server process + its database's Postgres backends, read
 * from /proc), milliseconds, by measurement: what the throughput ratio costs
 * without the scheduling noise of a busy machine. Medians over the rounds.
 */
const cpuPerCall = new Map<string, number[]>();

async function backendPids(databaseUrl: string): Promise<number[]> {
  const name = new URL(databaseUrl).pathname.slice(1);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>("select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", [name]);
    return rows.map((r) => r.pid);
  } finally {
    await client.end();
  }
}

/** runLoad, also recording CPU milliseconds per call under `key`. */
async function measured(key: string, r: Running, options: LoadOptions, call: (i: number) => Promise<unknown>): Promise<LoadResult> {
  const pids = await backendPids(r.database.url);
  const cpu = () => r.server.cpuSeconds() + pids.reduce((sum, pid) => sum + (processCpuSeconds(pid) || 0), 0);
  let calls = 0;
  const before = cpu();
  const result = await runLoad(options, async (i) => {
    const answer = await call(i);
    calls++;
    return answer;
  });
  const list = cpuPerCall.get(key) ?? [];
  list.push(((cpu() - before) * 1000) / calls);
  cpuPerCall.set(key, list);
  return result;
}

const cpuMs = (key: string) => `${median(cpuPerCall.get(key) ?? []).toFixed(2)} ms`;

async function start(variant: Variant, dataDir: string): Promise<Running> {
  const database = await createBenchDatabase();
  const { env, stream } = serverEnv(database.url, dataDir, natsUrl);
  const server = await startServerProcess(env, variant.main);
  return { server, database, stream };
}

async function stop(r: Running): Promise<void> {
  await r.server.stop();
  await r.database.drop();
  await deleteStream(natsUrl, r.stream).catch(() => undefined);
}

const fmt = (r: LoadResult) => `${r.throughput.toFixed(0)}/s, p50 ${r.p50.toFixed(2)} ms${r.errors > 0 ? `, ${r.errors} errors (${r.firstError})` : ""}`;

const dataDir = mkdtempSync(join(tmpdir(), "rg-bench-focus-"));
const lines: string[] = [`load average at start: ${loadavg().map((l) => l.toFixed(1)).join("/")}`, ""];
const running: Running[] = [];
try {
  if (!skip.has("gate")) {
    // Section 1: per variant one server, a plain and a three-rule project; then rounds of check, plain, rules per variant.
    const gates: { variant: Variant; running: Running; caller: GrpcJsCaller; plain: () => Promise<unknown>; rules: () => Promise<unknown>; check: () => Promise<unknown> }[] = [];
    for (const variant of variants) {
      const r = await start(variant, dataDir);
      running.push(r);
      const plain = await seedProject(r.server.baseUrl, "gate");
      const rules = await seedProject(r.server.baseUrl, "gate-rules", true);
      const caller = await loadCaller(r.server.baseUrl, "bench-pipeline");
      const passing = (p: SeededProject) => {
        const once = evaluateSeeded(caller, p);
        return async () => {
          if (!(await once()).allPassed) throw new Error(`${p.project.project} did not pass`);
        };
      };
      gates.push({ variant, running: r, caller, plain: passing(plain), rules: passing(rules), check: healthCheck(caller) });
    }
    log("section 1 warm-up");
    for (const g of gates) for (const call of [g.check, g.plain, g.rules]) await runLoad({ callers: 16, durationMs: WARMUP_MS, maxCalls: MAX_CALLS }, call);
    log("section 1 rounds");
    const options = { callers: 16, durationMs: LOAD_MS, maxCalls: MAX_CALLS, warmupCalls: 32 };
    const measures = gates.flatMap((g) =>
      (["check", "plain", "rules"] as const).map((kind) => () => measured(`${g.variant.label}|${kind}`, g.running, options, g[kind])),
    );
    const medians = await alternatingMedians(RUNS, measures);
    lines.push(
      "| server | Check (16 callers) | EvaluatePolicies | ratio | with 3 rules | ratio | CPU per call: Check / plain / 3 rules | CPU ratio plain / 3 rules |",
      "| --- | --- | --- | ---: | --- | ---: | --- | ---: |",
    );
    gates.forEach((g, i) => {
      const [check, plain, rules] = [medians[3 * i], medians[3 * i + 1], medians[3 * i + 2]] as LoadResult[] as [LoadResult, LoadResult, LoadResult];
      lines.push(`| ${g.variant.label} | ${fmt(check)} | ${fmt(plain)} | ${(plain.throughput / check.throughput).toFixed(2)} | ${fmt(rules)} | ${(rules.throughput / check.throughput).toFixed(2)} | ${(["check", "plain", "rules"] as const).map((k) => cpuMs(`${g.variant.label}|${k}`)).join(" / ")} | ${(["plain", "rules"] as const).map((k) => (median(cpuPerCall.get(`${g.variant.label}|check`) ?? []) / median(cpuPerCall.get(`${g.variant.label}|${k}`) ?? [])).toFixed(2)).join(" / ")} |`);
      g.caller.close();
    });
    lines.push("");
    for (const r of running.splice(0)) await stop(r);
  }
  if (!skip.has("scale")) {
    // Section 3: per variant one server and database, grown alike; p50 at one caller, rounds interleaved.
    const scales: { variant: Variant; running: Running; pool: pg.Pool; seeded: SeededProject; caller: GrpcJsCaller }[] = [];
    for (const variant of variants) {
      const r = await start(variant, dataDir);
      running.push(r);
      const seeded = await seedProject(r.server.baseUrl, "scale", true);
      scales.push({ variant, running: r, pool: new pg.Pool({ connectionString: r.database.url, max: 2 }), seeded, caller: await loadCaller(r.server.baseUrl, "bench-pipeline") });
    }
    const at = async (rows: number, from: number) => {
      log(`section 3: growing to ${rows} rows`);
      for (const s of scales) await growTo(s.pool, s.seeded, from, rows);
      const options = { callers: 1, durationMs: LOAD_MS, maxCalls: MAX_CALLS, warmupCalls: 100 };
      return alternatingMedians(RUNS, scales.map((s) => () => measured(`${s.variant.label}|${rows}`, s.running, options, evaluateSeeded(s.caller, s.seeded))));
    };
    const small = await at(1_000, 0);
    const large = await at(LARGE, 1_000);
    lines.push(`| server | p50 at 1,000 rows | p50 at ${LARGE.toLocaleString("en")} rows | ratio | CPU per call at 1,000 / ${LARGE.toLocaleString("en")} | ratio |`, "| --- | ---: | ---: | ---: | ---: | ---: |");
    scales.forEach((s, i) => {
      const [a, b] = [small[i], large[i]] as [LoadResult, LoadResult];
      lines.push(`| ${s.variant.label} | ${a.p50.toFixed(2)} ms | ${b.p50.toFixed(2)} ms | ${(b.p50 / a.p50).toFixed(2)} | ${cpuMs(`${s.variant.label}|1000`)} / ${cpuMs(`${s.variant.label}|${LARGE}`)} | ${(median(cpuPerCall.get(`${s.variant.label}|${LARGE}`) ?? []) / median(cpuPerCall.get(`${s.variant.label}|1000`) ?? [])).toFixed(2)} |`);
      s.caller.close();
    });
    for (const s of scales) await s.pool.end();
  }
} finally {
  for (const r of running) await stop(r).catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}
lines.push("", `load average at end: ${loadavg().map((l) => l.toFixed(1)).join("/")}`);
process.stdout.write(`${lines.join("\n")}\n`);
