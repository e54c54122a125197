import { type ChildProcess, spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The built CLI (package.json `bin`). */
export const CLI = join(process.cwd(), "dist/src/cli/main.js");

/**
 * Every spawned process gets a CLI config path of its own unless the test
 * names one: a developer's real ~/.config/releasegate (a saved login) must
 * never change what a test sees, and no test may write there.
 */
const NO_USER_CONFIG = { RELEASEGATE_CONFIG: join(tmpdir(), `rg-test-no-cli-config-${process.pid}`, "config.json") };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output; `input` is written to its stdin. */
export function runProcess(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...NO_USER_CONFIG, ...env }, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Runs `releasegate ARGS` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return runProcess(process.execPath, [CLI, ...args], env, input);
}

/** Starts `releasegate ARGS` and returns the process with its growing output. */
export function startCli(args: string[], env: Record<string, string> = {}) {
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...NO_USER_CONFIG, ...env },
    stdio: "pipe",
  });
  const out = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d: Buffer) => {
    out.stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out.stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, out, exited };
}
