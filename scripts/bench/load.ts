import { commandCpuMs, machineBusyMs, ownCpuMs } from "./proc-cpu.js";

/** A closed-loop load generator: N callers, each issuing its next call when the last one answers. */

export interface LoadOptions {
  /** Concurrent callers. */
  readonly callers: number;
  /** Stop issuing after this many milliseconds. */
  readonly durationMs: number;
  /** Stop issuing after this many calls in total (bounds a fast run). */
  readonly maxCalls: number;
  /** Calls made before measuring, not counted (JIT, connection, caches). */
  readonly warmupCalls?: number;
}

export interface LoadResult {
  readonly callers: number;
  readonly calls: number;
  readonly errors: number;
  /** First error message seen, if any. */
  readonly firstError?: string;
  readonly seconds: number;
  /** Successful calls per second. */
  readonly throughput: number;
  /** Latency percentiles in milliseconds. */
  readonly p50: number;
  readonly p99: number;
  /** Server CPU (all threads) per call, in milliseconds, when measured (`runLoadOn`). */
  readonly serverCpuMsPerCall?: number;
  /**
   * CPU time of the whole machine per call, in milliseconds: every process
   * (load generator, server, Postgres, NATS, anything else running) over the
   * timed part of the run, from /proc/stat. NaN where /proc/stat is missing.
   */
  readonly machineCpuMsPerCall: number;
  /** Of that, the load generator's own process (this one) per call. */
  readonly loadGeneratorCpuMsPerCall: number;
  /** Of that, every Postgres process (backends, WAL writer, …) per call; 0 on PGlite, which runs in the server. */
  readonly postgresCpuMsPerCall: number;
}

/** The q-quantile (0..1) of ascending `sorted`, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** Runs `call(i)` (i = global call index) from `callers` loops; latencies by `process.hrtime`. */
export async function runLoad(options: LoadOptions, call: (i: number) => Promise<unknown>): Promise<LoadResult> {
  let next = 0;
  for (let w = 0; w < (options.warmupCalls ?? 0); w += options.callers) {
    await Promise.all(Array.from({ length: options.callers }, () => call(next++).catch(() => undefined)));
  }
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const busyBefore = machineBusyMs();
  const ownBefore = ownCpuMs();
  const postgresBefore = commandCpuMs("postgres");
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(options.durationMs) * 1_000_000n;
  let issued = 0;
  const loop = async () => {
    while (issued < options.maxCalls && process.hrtime.bigint() < deadline) {
      issued++;
      const t0 = process.hrtime.bigint();
      try {
        await call(next++);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: options.callers }, loop));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const busyMs = machineBusyMs() - busyBefore;
  const ownMs = ownCpuMs() - ownBefore;
  const postgresMs = commandCpuMs("postgres") - postgresBefore;
  const perIssued = (totalMs: number) => (issued === 0 ? Number.NaN : totalMs / issued);
  latencies.sort((a, b) => a - b);
  return {
    callers: options.callers,
    calls: latencies.length,
    errors,
    firstError,
    seconds,
    throughput: latencies.length / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    machineCpuMsPerCall: perIssued(busyMs),
    loadGeneratorCpuMsPerCall: perIssued(ownMs),
    postgresCpuMsPerCall: perIssued(postgresMs),
  };
}

/**
 * `runLoad` against one server process, also measuring the server's CPU time
 * per call (warm-up calls included in the count, as they are in the CPU time):
 * what bounds throughput when the server's one JavaScript thread is the limit.
 */
export async function runLoadOn(
  server: { cpuMs(): number },
  options: LoadOptions,
  call: (i: number) => Promise<unknown>,
): Promise<LoadResult> {
  const before = server.cpuMs();
  const result = await runLoad(options, call);
  const calls = result.calls + result.errors + (options.warmupCalls ?? 0);
  return { ...result, serverCpuMsPerCall: calls === 0 ? Number.NaN : (server.cpuMs() - before) / calls };
}

/**
 * Runs each measurement once per round, in the order given, for `rounds`
 * rounds (alternating, so drift over time hits them alike), and returns
 * each one's medians (`medianOfRuns`), in the same order.
 */
export async function alternatingMedians<const M extends readonly (() => Promise<LoadResult>)[]>(
  rounds: number,
  measures: M,
): Promise<{ [K in keyof M]: LoadResult }> {
  const runs = measures.map((): LoadResult[] => []);
  for (let r = 0; r < rounds; r++) for (const [i, measure] of measures.entries()) runs[i]?.push(await measure());
  return runs.map(medianOfRuns) as { [K in keyof M]: LoadResult };
}

/** Each figure's median over several runs of one configuration. */
function medianOfRuns(runs: readonly LoadResult[]): LoadResult {
  const pick = (f: (r: LoadResult) => number) => median(runs.map(f));
  const first = runs[0];
  if (first === undefined) throw new Error("no runs");
  return {
    callers: first.callers,
    calls: pick((r) => r.calls),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    firstError: runs.find((r) => r.firstError !== undefined)?.firstError,
    seconds: pick((r) => r.seconds),
    throughput: pick((r) => r.throughput),
    p50: pick((r) => r.p50),
    p99: pick((r) => r.p99),
    machineCpuMsPerCall: pick((r) => r.machineCpuMsPerCall),
    loadGeneratorCpuMsPerCall: pick((r) => r.loadGeneratorCpuMsPerCall),
    postgresCpuMsPerCall: pick((r) => r.postgresCpuMsPerCall),
    ...(first.serverCpuMsPerCall !== undefined ? { serverCpuMsPerCall: pick((r) => r.serverCpuMsPerCall ?? Number.NaN) } : {}),
  };
}
