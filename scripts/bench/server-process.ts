import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(import.meta.url);
/** The repository root: two levels up from scripts/bench/, three from dist/scripts/bench/. */
const ROOT = join(dirname(here), ...(here.endsWith(".ts") ? ["..", ".."] : ["..", "..", ".."]));
/** The built server under `npm run bench`, else the TypeScript source through tsx (the smoke test). */
const SERVER = here.endsWith(".ts") ? ["--import", "tsx", join(ROOT, "src", "main.ts")] : [join(ROOT, "dist", "src", "main.js")];
/** The Node flags of `npm start` (V8 heap sizing), read from package.json so the server is measured as it ships. */
const START_FLAGS = (() => {
  const start: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts?.start ?? "";
  const match = /^node((?:\s+--\S+)*)\s+dist\/src\/main\.js$/.exec(start.trim());
  if (match === null) throw new Error(`package.json "start" is not \`node [--flag ...] dist/src/main.js\`: ${start}`);
  return (match[1] ?? "").split(/\s+/).filter((flag) => flag !== "");
})();
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
/** How often the log is read while waiting for "listening" (bounds the start-up error). */
const POLL_MS = 5;

export interface ServerProcess {
  readonly baseUrl: string;
  /** Milliseconds from spawn to the "listening" log line. */
  readonly startupMs: number;
  /** Peak resident set size so far (VmHWM), in bytes. */
  peakRssBytes(): number;
  /** CPU time the server process has used so far (user + system), seconds. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** Clock ticks per second of /proc/PID/stat (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** User + system CPU time of process `pid` so far, seconds; NaN when it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    // Fields after the command (which may hold spaces) start at state; utime and stime are fields 14 and 15.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return Number.NaN;
  }
}

/** Whether `child` exited within `ms`. */
function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return once(child, "exit", { signal: AbortSignal.timeout(ms) }).then(() => true, () => false);
}

/**
 * Spawns the server on 127.0.0.1 (kernel-chosen ports) with `env` and waits for its "listening" log line.
 * `main`: another build's dist/src/main.js (a baseline to compare with); default this tree's server.
 */
export async function startServerProcess(env: Record<string, string>, main?: string): Promise<ServerProcess> {
  // The log goes to a file, not a pipe: a load generator busy elsewhere would make the server buffer it.
  const logDir = mkdtempSync(join(tmpdir(), "rg-bench-log-"));
  const logPath = join(logDir, "server.log");
  const logFd = openSync(logPath, "w");
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [...START_FLAGS, ...(main === undefined ? SERVER : [main])], {
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", logFd, "pipe"],
  });
  closeSync(logFd);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const listening = readFileSync(logPath, "utf8").split("\n").find((line) => line.includes('"msg":"releasegate listening'));
    if (listening !== undefined) {
      const { port } = JSON.parse(listening) as { port: number };
      const pid = child.pid as number;
      return {
        baseUrl: `http://127.0.0.1:${port}`,
        startupMs: Number(process.hrtime.bigint() - started) / 1e6,
        cpuSeconds: () => processCpuSeconds(pid),
        peakRssBytes: () => Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN) * 1024,
        async stop() {
          child.kill("SIGTERM");
          if (!(await exited(child, STOP_TIMEOUT_MS))) child.kill("SIGKILL");
          await exited(child, STOP_TIMEOUT_MS);
          rmSync(logDir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(logDir, { recursive: true, force: true });
      throw new Error(`server did not start (exit ${child.exitCode}) in ${START_TIMEOUT_MS} ms: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
