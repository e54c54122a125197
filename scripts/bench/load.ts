/**
 * How long and how often each benchmark runs: `runs` alternating repetitions
 * of `loadMs` each (at most `maxCalls`) at each of `callers`, after
 * `warmupMs` of uncounted load per RPC on a fresh server (JIT warm-up).
 */
export interface BenchSettings {
  readonly quick: boolean;
  readonly runs: number;
  readonly loadMs: number;
  readonly maxCalls: number;
  readonly callers: readonly number[];
  readonly warmupMs: number;
}

export const FULL: BenchSettings = { quick: false, runs: 5, loadMs: 2_000, maxCalls: 200_000, callers: [1, 16], warmupMs: 10_000 };
/** A smoke run that keeps the scripts from rotting (seconds, not minutes). */
export const QUICK: BenchSettings = { quick: true, runs: 1, loadMs: 200, maxCalls: 2_000, callers: [1, 16], warmupMs: 200 };

/** One closed-loop run: `callers` loops, each issuing its next call when the last one answered. */
export interface LoadResult {
  readonly errors: number;
  readonly firstError?: string;
  /** Successful calls per second. */
  readonly throughput: number;
  /** Latency percentiles, milliseconds. */
  readonly p50: number;
  readonly p99: number;
}

/** The q-quantile (0..1) of ascending `sorted`, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

export const median = (values: readonly number[]): number => quantile([...values].sort((a, b) => a - b), 0.5);

export type LoadOptions = { readonly callers: number; readonly durationMs: number; readonly maxCalls: number; readonly warmupCalls?: number };

/**
 * Runs `call(i)` (i counts every call, warm-up included) from `callers` loops
 * for `durationMs` or `maxCalls`, after `warmupCalls` uncounted calls.
 */
export async function runLoad(options: LoadOptions, call: (i: number) => Promise<unknown>): Promise<LoadResult> {
  let next = 0;
  while (next < (options.warmupCalls ?? 0))
    await Promise.all(Array.from({ length: options.callers }, () => call(next++).catch(() => undefined)));
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
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
  latencies.sort((a, b) => a - b);
  return { errors, firstError, throughput: latencies.length / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/**
 * Runs each measurement once per round, in the order given, for `rounds`
 * rounds (alternating, so drift over time hits them alike), and returns each
 * one's per-figure medians in the same order.
 */
export async function alternatingMedians<const M extends readonly (() => Promise<LoadResult>)[]>(rounds: number, measures: M): Promise<{ [K in keyof M]: LoadResult }> {
  const runs = measures.map((): LoadResult[] => []);
  for (let r = 0; r < rounds; r++) for (const [i, measure] of measures.entries()) runs[i]?.push(await measure());
  return runs.map((rs) => {
    const pick = (f: (r: LoadResult) => number) => median(rs.map(f));
    const errors = rs.reduce((n, r) => n + r.errors, 0);
    return { errors, firstError: rs.find((r) => r.firstError)?.firstError, throughput: pick((r) => r.throughput), p50: pick((r) => r.p50), p99: pick((r) => r.p99) };
  }) as { [K in keyof M]: LoadResult };
}

/** Polls `done` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await done()); await new Promise((resolve) => setTimeout(resolve, 50)))
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}
