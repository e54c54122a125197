import { rmSync } from "node:fs";
import { BENCH_JWT_SECRET, createBenchDatabase, evaluateSeeded, loadCaller, seedProject } from "./fixtures.js";
import { median, runLoad } from "./load.js";
import { startServerProcess } from "./server-process.js";
import type { BenchSettings } from "./settings.js";
import { startNodeFlags } from "./start-flags.js";

export interface StartupResult {
  /** Median milliseconds from spawn to "listening". */
  readonly pgliteFresh: number;
  readonly pgliteReopen: number;
  readonly postgresFresh: number;
  readonly postgresMigrated: number;
}

/** Milliseconds from spawn to "listening" of a server on `env` (stopped again). */
async function startupMs(env: Record<string, string>): Promise<number> {
  const server = await startServerProcess(env);
  await server.stop();
  return server.startupMs;
}

/**
 * Item 5 (start-up): a new and then reused PGlite data directory, an empty
 * (unmigrated) and then migrated Postgres database; medians over the runs.
 * Leaves the last PGlite directory in `pgliteDir` for the memory benchmark.
 */
export async function benchStartup(settings: BenchSettings, pgliteDir: string): Promise<StartupResult> {
  const runs = settings.quick ? 1 : 3;
  const base = { RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET };
  const times = { pgliteFresh: [] as number[], pgliteReopen: [] as number[], postgresFresh: [] as number[], postgresMigrated: [] as number[] };
  for (let r = 0; r < runs; r++) {
    rmSync(pgliteDir, { recursive: true, force: true });
    times.pgliteFresh.push(await startupMs({ ...base, DATA_DIR: pgliteDir }));
    times.pgliteReopen.push(await startupMs({ ...base, DATA_DIR: pgliteDir }));
    const database = await createBenchDatabase();
    try {
      const env = { ...base, DATABASE_URL: database.url, DATA_DIR: pgliteDir };
      times.postgresFresh.push(await startupMs(env));
      times.postgresMigrated.push(await startupMs(env));
    } finally {
      await database.drop();
    }
  }
  return {
    pgliteFresh: median(times.pgliteFresh),
    pgliteReopen: median(times.pgliteReopen),
    postgresFresh: median(times.postgresFresh),
    postgresMigrated: median(times.postgresMigrated),
  };
}

/** Item 5 (memory): peak RSS of a PGlite server after EvaluatePolicies load at 16 callers. */
export async function benchPgliteUnderLoad(
  settings: BenchSettings,
  pgliteDir: string,
): Promise<{ peakRssBytes: number; throughput: number }> {
  const server = await startServerProcess({ RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET, DATA_DIR: pgliteDir });
  try {
    const seeded = await seedProject(server.baseUrl, "pglite");
    const caller = await loadCaller(server.baseUrl, "bench-pipeline");
    const result = await runLoad(
      { callers: 16, durationMs: settings.loadMs * 2, maxCalls: settings.maxCalls, warmupCalls: 16 * settings.warmupPerCaller },
      evaluateSeeded(caller, seeded),
    );
    caller.close();
    return { peakRssBytes: server.peakRssBytes(), throughput: result.throughput };
  } finally {
    await server.stop();
  }
}

/** The V8 heap sizing `npm start` gives the server (from package.json). */
export const START_NODE_FLAGS: readonly string[] = startNodeFlags();

/** The old-generation cap `npm start` sets, in MB (V8 `--max-old-space-size`); NaN when it sets none. */
export const CAPPED_OLD_SPACE_MB = Number(
  START_NODE_FLAGS.find((f) => f.startsWith("--max-old-space-size="))?.split("=")[1] ?? Number.NaN,
);

/**
 * Item 5 (memory, for comparison): the Postgres server run by plain `node`,
 * without the heap sizing of `npm start` (which every other server in the
 * benchmarks gets), under EvaluatePolicies at 16 then 64 callers. Against
 * the shipped rows it shows how much of a plain run's peak is garbage V8
 * had no reason to collect yet.
 */
export async function benchPlainNodeHeap(
  settings: BenchSettings,
  dataDir: string,
): Promise<{ peakRssBytes: number; throughput: number }> {
  const database = await createBenchDatabase();
  const server = await startServerProcess({
    RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET,
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
  }, { nodeFlags: [] });
  try {
    const seeded = await seedProject(server.baseUrl, "plain");
    const caller = await loadCaller(server.baseUrl, "bench-pipeline");
    const evaluate = evaluateSeeded(caller, seeded);
    const throughputs: number[] = [];
    for (const callers of [16, 64])
      throughputs.push(
        (await runLoad({ callers, durationMs: settings.loadMs * 2, maxCalls: settings.maxCalls }, evaluate)).throughput,
      );
    caller.close();
    return { peakRssBytes: server.peakRssBytes(), throughput: median(throughputs) };
  } finally {
    await server.stop();
    await database.drop();
  }
}
