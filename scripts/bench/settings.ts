/** How long and how often each benchmark runs. */
export interface BenchSettings {
  readonly quick: boolean;
  /** Repetitions of each measurement; the report shows medians. */
  readonly runs: number;
  /** Duration of one load run, in milliseconds. */
  readonly loadMs: number;
  /** Upper bound of calls in one load run. */
  readonly maxCalls: number;
  /** Concurrent callers for the throughput tables. */
  readonly callers: readonly number[];
  /** Uncounted warm-up calls per caller before each load run. */
  readonly warmupPerCaller: number;
  /** Uncounted load on a fresh server before its first table, in milliseconds (JIT warm-up). */
  readonly warmupMs: number;
}

export const FULL: BenchSettings = { quick: false, runs: 5, loadMs: 2_000, maxCalls: 200_000, callers: [1, 16, 64], warmupPerCaller: 5, warmupMs: 15_000 };
/** A smoke run that keeps the scripts from rotting (seconds, not minutes). */
export const QUICK: BenchSettings = { quick: true, runs: 1, loadMs: 250, maxCalls: 2_000, callers: [1, 16], warmupPerCaller: 2, warmupMs: 200 };
