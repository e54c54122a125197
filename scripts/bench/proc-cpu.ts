import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU time read from /proc (Linux, USER_HZ = 100): what the load runs use to
 * say where a call's CPU went — the whole machine, one process, or every
 * process of one program (all Postgres backends and helpers). Readings are
 * NaN where /proc is missing, so a report prints "–" rather than a guess.
 */

/** Milliseconds the machine's CPUs have been busy (all but idle and iowait). */
export function machineBusyMs(): number {
  let line: string | undefined;
  try {
    line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  } catch {
    return Number.NaN;
  }
  const [, user, nice, system, , , irq, softirq, steal] = (line ?? "").trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 10;
}

/** The command name and user + system CPU milliseconds (all threads) of one /proc/PID/stat. */
function readStat(pid: number | string): { command: string; cpuMs: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // exited between the listing and the read
  }
  const open = stat.indexOf("(");
  const close = stat.lastIndexOf(")");
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th of those.
  const fields = stat.slice(close + 2).split(" ");
  return { command: stat.slice(open + 1, close), cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 };
}

/** CPU milliseconds one process has used so far (user + system, all threads). */
export function processCpuMs(pid: number): number {
  return readStat(pid)?.cpuMs ?? Number.NaN;
}

/**
 * CPU milliseconds used so far by every live process whose command name is
 * `command` (e.g. "postgres": the backends, WAL writer, checkpointer). A
 * process that exits between two readings takes its CPU with it, so read
 * around runs in which the processes stay (a pool's connections do).
 */
export function commandCpuMs(command: string): number {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return Number.NaN;
  }
  let total = 0;
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat?.command === command) total += stat.cpuMs;
  }
  return total;
}

/** CPU milliseconds this process (the load generator) has used so far. */
export function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
