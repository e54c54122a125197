import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DecisionMeasurement } from "./decision-process.js";
import { median } from "./load.js";
import type { BenchSettings } from "./settings.js";

export interface DecisionResult {
  /** Microseconds per decision (5 policies): the median of the processes' medians. */
  readonly medianMicros: number;
  /** Microseconds per decision: the median of the processes' 99th percentiles. */
  readonly p99Micros: number;
  /** Each process's median in run order, microseconds. */
  readonly processMediansMicros: readonly number[];
  /** Timed calls, all processes together. */
  readonly samples: number;
  /** Uncounted warm-up per process, milliseconds. */
  readonly warmupMs: number;
  /** Timed sampling per process, milliseconds. */
  readonly timeMs: number;
  /** 1-minute load average when the section began. */
  readonly loadAverage: number;
  readonly allPassed: boolean;
}

export class DecisionProcessError extends Error {
  override readonly name = "DecisionProcessError";
}

const here = fileURLToPath(import.meta.url);
/**
 * How to start one measuring process: the built entry point when this file
 * runs from dist/ (`npm run bench`), else the TypeScript source through tsx
 * (the smoke test).
 */
const PROCESS_COMMAND: readonly string[] = here.endsWith(".ts")
  ? ["--import", "tsx", join(dirname(here), "decision-process.ts")]
  : [join(dirname(here), "decision-process.js")];
/** A measuring process that takes longer than this is killed (it needs a few seconds). */
const PROCESS_TIMEOUT_MS = 60_000;

function parseMeasurement(stdout: string): DecisionMeasurement {
  let parsed: Partial<Record<keyof DecisionMeasurement, unknown>>;
  try {
    parsed = JSON.parse(stdout);
  } catch (err) {
    throw new DecisionProcessError(`unreadable output: ${stdout.slice(0, 200)}`, { cause: err });
  }
  const { medianMicros, p99Micros, samples, allPassed } = parsed;
  if (typeof medianMicros !== "number" || typeof p99Micros !== "number" || typeof samples !== "number" || typeof allPassed !== "boolean")
    throw new DecisionProcessError(`incomplete output: ${stdout.slice(0, 200)}`);
  return { medianMicros, p99Micros, samples, allPassed };
}

function runProcess(warmupMs: number, timeMs: number): Promise<DecisionMeasurement> {
  return new Promise((resolve, reject) => {
    const args = [...PROCESS_COMMAND, "--warmup-ms", String(warmupMs), "--time-ms", String(timeMs)];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), PROCESS_TIMEOUT_MS);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new DecisionProcessError(`could not start: ${err.message}`, { cause: err }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new DecisionProcessError(`exited with ${code ?? signal}: ${stderr.trim()}`));
      else {
        try {
          resolve(parseMeasurement(stdout));
        } catch (err) {
          reject(err);
        }
      }
    });
  });
}

/**
 * Item 6: the pure decision, 5 compiled policies against in-memory facts, no
 * I/O. Each run is a fresh process (decision-process.ts), so the figure does
 * not inherit the load generator's heap, garbage or JIT state from the
 * sections before it.
 */
export async function benchDecision(settings: BenchSettings): Promise<DecisionResult> {
  const warmupMs = settings.quick ? 100 : 1_000;
  const timeMs = settings.quick ? 200 : 2_000;
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const runs: DecisionMeasurement[] = [];
  // One after another: side by side they would compete for the same cores.
  for (let r = 0; r < settings.runs; r++) runs.push(await runProcess(warmupMs, timeMs));
  return {
    medianMicros: median(runs.map((r) => r.medianMicros)),
    p99Micros: median(runs.map((r) => r.p99Micros)),
    processMediansMicros: runs.map((r) => r.medianMicros),
    samples: runs.reduce((n, r) => n + r.samples, 0),
    warmupMs,
    timeMs,
    loadAverage,
    allPassed: runs.every((r) => r.allPassed),
  };
}
