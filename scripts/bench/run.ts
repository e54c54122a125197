/**
 * Runs every benchmark and writes docs/benchmarks.md.
 *
 *   npm run bench                      # full run (~10 min), rewrites docs/benchmarks.md
 *   npm run bench -- --quick --out F   # smoke run (~30 s) into F
 *   npm run bench -- --only scale      # some sections: gate, scale, footprint, decision
 *
 * Needs Postgres (BENCH_ADMIN_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 * bench databases are created and dropped) and NATS with JetStream (NATS_URL,
 * default nats://127.0.0.1:4222; each run makes and deletes its own stream).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { benchApprove } from "./approve.js";
import { benchDecision } from "./decision.js";
import { benchEvaluate } from "./evaluate.js";
import { ADMIN_DATABASE_URL, BENCH_JWT_SECRET, BENCH_POOL_SIZE, createBenchDatabase, seedProject } from "./fixtures.js";
import { benchFloor, FLOOR_CALLERS } from "./floor.js";
import { benchPgliteUnderLoad, benchPlainNodeHeap, benchStartup } from "./footprint.js";
import { type BenchReport, type Outcome, renderReport } from "./report.js";
import { benchScale } from "./scale.js";
import { startServerProcess } from "./server-process.js";
import { FULL, QUICK } from "./settings.js";
import { benchSignal, deleteStream } from "./signal.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    note: { type: "string", multiple: true, default: [] },
    /** Comma-separated sections to run: gate (1–3), scale (4), footprint (5), decision (6). */
    only: { type: "string" },
  },
});
const settings = values.quick ? QUICK : FULL;
const out = values.out ?? (values.quick ? join(tmpdir(), "releasegate-bench-quick.md") : "docs/benchmarks.md");
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const only = values.only?.split(",");
const wanted = (section: string) => only === undefined || only.includes(section);

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function attempt<T>(name: string, run: () => Promise<T>): Promise<Outcome<T>> {
  log(`${name}…`);
  try {
    return { ok: true, value: await run() };
  } catch (err) {
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    log(`${name} failed: ${error}`);
    return { ok: false, error };
  }
}

async function postgresVersion(): Promise<string> {
  const c = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await c.connect();
  try {
    return (await c.query<{ server_version: string }>("show server_version")).rows[0]?.server_version ?? "?";
  } finally {
    await c.end();
  }
}

function nproc(): string {
  try {
    return execFileSync("nproc", { encoding: "utf8" }).trim();
  } catch {
    return String(availableParallelism());
  }
}

const failedAll = (error: string) => ({ ok: false, error }) as const;
const dataDir = mkdtempSync(join(tmpdir(), "rg-bench-run-"));
const started = Date.now();
const loadAtStart = loadavg();
const report: { -readonly [K in keyof BenchReport]?: BenchReport[K] } = {};

// Sections 1–3 share one server on Postgres with NATS, as deployed.
if (wanted("gate")) {
  const database = await createBenchDatabase();
  const suffix = randomBytes(4).toString("hex");
  const stream = `RG_BENCH_${suffix}`;
  const server = await attempt("server on Postgres + NATS", () =>
    startServerProcess({
      RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET,
      DATABASE_URL: database.url,
      DB_POOL_SIZE: String(BENCH_POOL_SIZE),
      DATA_DIR: dataDir,
      NATS_URL: natsUrl,
      NATS_STREAM: stream,
      NATS_SUBJECT_PREFIX: `rgbench${suffix}.approvals`,
    }),
  );
  if (server.ok) {
    const seeded = await attempt("seed", () => seedProject(server.value.baseUrl, "gate"));
    if (seeded.ok) {
      const peaks: number[] = [];
      report.evaluate = await attempt("1 evaluate", () => benchEvaluate(settings, server.value, seeded.value, database.url));
      // The framework floor runs while the gate server idles (its pool, LISTEN and relay stay up, as in every section).
      report.floor = await attempt("1 framework floor", () => benchFloor(settings, FLOOR_CALLERS));
      peaks.push(server.value.peakRssBytes());
      report.approve = await attempt("2 approve", () => benchApprove(settings, server.value, seeded.value, database.url));
      peaks.push(server.value.peakRssBytes());
      report.signal = await attempt("3 signal", () =>
        benchSignal(settings, server.value, seeded.value, { url: natsUrl, stream }),
      );
      peaks.push(server.value.peakRssBytes());
      report.serverPeakRssBytes = { ok: true, value: peaks };
    } else {
      report.evaluate = report.approve = report.signal = report.serverPeakRssBytes = seeded;
    }
    await server.value.stop();
  } else {
    report.evaluate = report.approve = report.signal = report.serverPeakRssBytes = server;
  }
  await database.drop();
  await deleteStream(natsUrl, stream).catch(() => undefined);
}

// Section 4 on a database of its own (it grows to a million rows per table).
if (wanted("scale")) {
  const database = await createBenchDatabase();
  report.scale = await attempt("4 scale", async () => {
    const server = await startServerProcess({
      RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET,
      DATABASE_URL: database.url,
      DB_POOL_SIZE: String(BENCH_POOL_SIZE),
      DATA_DIR: dataDir,
    });
    try {
      return await benchScale(settings, server, await seedProject(server.baseUrl, "scale"), database.url);
    } finally {
      await server.stop();
    }
  });
  await database.drop();
}

if (wanted("footprint")) {
  const pgliteDir = join(dataDir, "pglite");
  report.startup = await attempt("5 start-up", () => benchStartup(settings, pgliteDir));
  // The smoke run skips this one: it only repeats section 1's calls on PGlite.
  report.pgliteUnderLoad = settings.quick
    ? failedAll("skipped in --quick")
    : await attempt("5 PGlite under load", () => benchPgliteUnderLoad(settings, pgliteDir));
  report.plainNodeHeap = settings.quick
    ? failedAll("skipped in --quick")
    : await attempt("5 plain node heap", () => benchPlainNodeHeap(settings, dataDir));
}
if (wanted("decision")) report.decision = await attempt("6 decision", () => benchDecision(settings));
rmSync(dataDir, { recursive: true, force: true });

const machine = {
  date: new Date(started).toISOString(),
  command: `npm run bench${values.quick ? " -- --quick" : ""} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  "cores (nproc)": nproc(),
  cpu: cpus()[0]?.model ?? "?",
  memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
  node: process.version,
  postgres: await postgresVersion().catch((err: unknown) => `unreachable (${String(err)})`),
  "server, database, NATS and load generator": "all on this machine, over 127.0.0.1",
  "load generator": "@grpc/grpc-js unary calls (messages encoded by protobuf-es), one HTTP/2 connection per client (the evaluation's callers share one; each voter has its own)",
  "load average (1/5/15 min) at start → end": `${loadAtStart.map((l) => l.toFixed(1)).join("/")} → ${loadavg()
    .map((l) => l.toFixed(1))
    .join("/")} (on ${nproc()} cores; above that, other work competed for the CPU)`,
  medians: `of ${settings.runs} run(s) per figure, ${settings.loadMs} ms each (closed loop; warm-up calls not counted: ${settings.warmupMs} ms of load per RPC on a fresh server, then ${settings.warmupPerCaller} calls per caller before each run)`,
};
const full: BenchReport = {
  machine,
  cores: Number(nproc()),
  notes: values.note,
  evaluate: report.evaluate ?? failedAll("skipped (--only)"),
  floor: report.floor ?? failedAll("skipped (--only)"),
  approve: report.approve ?? failedAll("skipped (--only)"),
  signal: report.signal ?? failedAll("skipped (--only)"),
  scale: report.scale ?? failedAll("skipped (--only)"),
  serverPeakRssBytes: report.serverPeakRssBytes ?? failedAll("skipped (--only)"),
  pgliteUnderLoad: report.pgliteUnderLoad ?? failedAll("skipped (--only)"),
  plainNodeHeap: report.plainNodeHeap ?? failedAll("skipped (--only)"),
  startup: report.startup ?? failedAll("skipped (--only)"),
  decision: report.decision ?? failedAll("skipped (--only)"),
};
writeFileSync(out, `${renderReport(full)}\n`);
log(`wrote ${out}`);
