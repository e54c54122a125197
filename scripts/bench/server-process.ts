import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { processCpuMs } from "./proc-cpu.js";
import { startNodeFlags } from "./start-flags.js";

const here = fileURLToPath(import.meta.url);
/**
 * How to start the server: the built entry point when this file runs from
 * dist/ (`npm run bench`), else the TypeScript source through tsx (the smoke test).
 */
export const SERVER_COMMAND: readonly string[] = here.endsWith(".ts")
  ? ["--import", "tsx", join(dirname(here), "..", "..", "src", "main.ts")]
  : [join(dirname(here), "..", "..", "src", "main.js")];
/** How to start the framework floor (floor-server), the same way. */
export const FLOOR_COMMAND: readonly string[] = here.endsWith(".ts")
  ? ["--import", "tsx", join(dirname(here), "floor-server.ts")]
  : [join(dirname(here), "floor-server.js")];
/** How long a server may take to say it listens, in milliseconds. */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
/** How often the log file is read while waiting for "listening" (bounds the start-up error). */
const POLL_MS = 5;

export interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  readonly baseUrl: string;
  /** Milliseconds from spawn to the "listening" log line (read every POLL_MS). */
  readonly startupMs: number;
  /** Peak resident set size so far (VmHWM), in bytes. */
  peakRssBytes(): number;
  /** CPU time the process has used so far (user + system, all threads), in milliseconds. */
  cpuMs(): number;
  stop(): Promise<void>;
}

function procStatusBytes(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match === null ? Number.NaN : Number(match[1]) * 1024;
}

/** utime + stime from /proc/PID/stat, in milliseconds (clock ticks of 10 ms, USER_HZ = 100). */
function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Spawns the built server on 127.0.0.1 with a kernel-chosen port and waits
 * for its "listening" log line. `env` adds to a minimal environment;
 * `nodeFlags` replaces the Node flags of `npm start` (e.g. `[]` for plain `node`);
 * `command` replaces the server's entry point (e.g. FLOOR_COMMAND).
 */
export async function startServerProcess(
  env: Record<string, string>,
  options: { readonly nodeFlags?: readonly string[]; readonly command?: readonly string[] } = {},
): Promise<ServerProcess> {
  // The log goes to a file, not a pipe: a load generator busy reading a pipe
  // would make the server buffer its log lines (and inflate its RSS).
  const logDir = mkdtempSync(join(tmpdir(), "rg-bench-log-"));
  const logPath = join(logDir, "server.log");
  const logFd = openSync(logPath, "w");
  const started = process.hrtime.bigint();
  // BENCH_SERVER_NODE_ARGS passes Node flags to the server (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"
  // to profile it under load); Node refuses some of them in NODE_OPTIONS.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  // By default the server runs with the Node flags `npm start` gives it (V8 heap sizing): measured as it ships.
  const nodeFlags = options.nodeFlags ?? startNodeFlags();
  const child = spawn(process.execPath, [...nodeFlags, ...nodeArgs, ...(options.command ?? SERVER_COMMAND)], {
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", logFd, "pipe"],
  });
  closeSync(logFd);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  let exited: number | null | undefined;
  child.once("exit", (code) => {
    exited = code;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  let port: number | undefined;
  while (port === undefined) {
    for (const line of readFileSync(logPath, "utf8").split("\n")) {
      let entry: { msg?: string; port?: number } = {};
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      if (entry.msg?.startsWith("releasegate listening") && typeof entry.port === "number") port = entry.port;
    }
    if (port !== undefined) break;
    if (exited !== undefined) throw new Error(`server exited with ${exited} before listening: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server did not start in ${START_TIMEOUT_MS} ms: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const startupMs = Number(process.hrtime.bigint() - started) / 1e6;
  const pid = child.pid as number;
  return {
    pid,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    startupMs,
    peakRssBytes: () => procStatusBytes(pid, "VmHWM"),
    cpuMs: () => processCpuMs(pid),
    async stop() {
      child.kill("SIGTERM");
      if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
        child.kill("SIGKILL");
        await waitForExit(child, STOP_TIMEOUT_MS);
      }
      if (process.env.BENCH_KEEP_SERVER_LOG === undefined) rmSync(logDir, { recursive: true, force: true });
      else process.stderr.write(`server log kept: ${logPath}\n`);
    },
  };
}
