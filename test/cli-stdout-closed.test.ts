import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "./support/build.js";
import { CLI, runCli } from "./support/cli.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// `releasegate … | grep -q …` (docs/api.md does this under `set -o pipefail`):
// the reader may be gone before the CLI writes. The CLI then drops its output
// and ends with the command's own exit code, never with an EPIPE stack trace.

let server: TestServer;
let env: Record<string, string>;
const P = ["--project", "acme/cli-stdout-closed"];

beforeAll(async () => {
  await ensureBuilt();
  server = await startTestServer();
  env = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await token({ sub: "ada", orgs: { acme: "admin" } }) };
}, 240_000);
afterAll(() => server?.stop());

/** Runs `releasegate ARGS` with its stdout a pipe whose reading end is closed before the CLI starts writing. */
function runWithClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("releasegate with a reader that stopped reading", () => {
  let intent = "";

  beforeAll(async () => {
    const policy = await runCli(["policy", "create", "one-vote", ...P, "--type", "approval", "--target", "prod", "--required", "1"], env);
    expect(policy.code, policy.stderr).toBe(0);
    const registered = await runCli(["intent", "register", ...P, "--branch", "main", "--version", "1.0.0"], env);
    expect(registered.code, registered.stderr).toBe(0);
    intent = registered.stdout.trim();
  });

  it("a blocked evaluation still exits 1 (blocked), with no EPIPE crash", async () => {
    const { code, stderr } = await runWithClosedStdout(["policy", "evaluate", ...P, "--env", "prod", "--intent", intent]);
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(1);
  });

  it("history in JSON lines (several entries) exits 0, with no EPIPE crash", async () => {
    const bob = await token({ sub: "bob", orgs: { acme: "member" } });
    const approved = await runCli(["--token", bob, "approve", ...P, "--intent", intent, "--env", "prod", "-m", "ok"], env);
    expect(approved.code, approved.stderr).toBe(0);
    const full = await runCli(["-o", "json", "history", ...P, "--intent", intent, "--page-size", "1"], env);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toContain('"decision":"approved"');
    const { code, stderr } = await runWithClosedStdout(["-o", "json", "history", ...P, "--intent", intent, "--page-size", "1"]);
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });
});
