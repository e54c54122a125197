import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess } from "./support/cli.js";
import { deleteStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer } from "./support/server.js";

// Runs the README's "The whole story" as a newcomer would paste it: terminal
// 2's commands, terminal 3's coordinator in the background, then the votes,
// against a real server signalling on the real NATS. Only terminal 1 (install
// and start) is done by the harness; the server's port and the NATS the
// commands name are the test's (NATS_URL, the test's own stream), not the
// README's literal 127.0.0.1:50051 and nats://127.0.0.1:4222.

const README_SERVER = "http://127.0.0.1:50051";
const README_NATS = "nats://127.0.0.1:4222";

/** The story's shell block, split into its numbered steps ("# 1. …"). */
function storySteps(): Map<number, string> {
  const readme = readFileSync("README.md", "utf8");
  const section = readme.slice(readme.indexOf("## The whole story"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error("README has no shell block under 'The whole story'");
  const steps = new Map<number, string>();
  for (const part of block.split(/^(?=# \d+\. )/m)) {
    const n = /^# (\d+)\. /.exec(part)?.[1];
    if (n !== undefined) steps.set(Number(n), part);
  }
  return steps;
}

const names = uniqueSignalNames();
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({
    env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
});
afterAll(async () => {
  await server?.stop();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

describe("README: calling it with curl", () => {
  it("answers the documented EvaluatePolicies call with the documented JSON", async () => {
    const readme = readFileSync("README.md", "utf8");
    const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("## Calling it with curl")))?.[1] ?? "";
    const expected = /^# (\{.*\})$/m.exec(block)?.[1];
    expect(expected).toBeDefined();
    const { code, stdout, stderr } = await runProcess(
      "bash",
      ["-euo", "pipefail", "-c", block.replaceAll(README_SERVER, server.baseUrl)],
      { RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET },
    );
    expect(code, stderr).toBe(0);
    expect(stdout.trim()).toBe(expected);
  }, 60_000);
});

describe("README: the whole story", () => {
  it("has the steps a newcomer pastes, in order", () => {
    expect([...storySteps().keys()]).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("ends with the coordinator printing released after the second approval", async () => {
    const steps = storySteps();
    // The coordinator's command names the README's NATS: point it at the test's.
    expect(steps.get(5)).toContain(`NATS_URL=${README_NATS} `);
    const step = (n: number) =>
      (steps.get(n) ?? "").replaceAll(README_SERVER, server.baseUrl).replaceAll(README_NATS, SHARED_NATS_URL);
    const script = [
      step(2),
      step(3),
      step(4),
      'test -n "$INTENT" && test "$INTENT" != null',
      // Terminal 3, in the background; its output is what the reader watches.
      // In a process group of its own (job control on), so the trap ends npx,
      // tsx and the coordinator itself, not only the subshell (which left
      // the coordinator running after the test).
      `COORD_LOG=$(mktemp)`,
      "set -m",
      `( ${step(5).replace(/^#.*\n/gm, "").trim()} ) > "$COORD_LOG" 2>&1 &`,
      "COORD=$!",
      "set +m",
      "trap 'kill -- -$COORD 2>/dev/null || true' EXIT",
      step(6),
      step(7),
      // Wait (bounded) for the coordinator, as the reader would.
      'for _ in $(seq 1 300); do grep -q "^released" "$COORD_LOG" && break; sleep 0.1; done',
      'echo "--- coordinator"; cat "$COORD_LOG"',
    ].join("\n");
    const { code, stdout, stderr } = await runProcess("bash", ["-euo", "pipefail", "-c", script], {
      RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
      RELEASEGATE_SERVER: server.baseUrl,
      NATS_URL: SHARED_NATS_URL,
      NATS_STREAM: names.stream,
      NATS_SUBJECT_PREFIX: names.prefix,
      COORDINATOR_DURABLE: `story-${names.stream}`,
    });
    const output = stdout + stderr;
    expect(code, output).toBe(0);
    // Alice may not approve her own release; Bob's is 1/2, Carol's 2/2.
    expect(output).toContain('"code":"permission_denied"');
    expect(output).toMatch(/"currentApprovals":1[,}]/);
    expect(output).toMatch(/"currentApprovals":2[,}]/);
    const coordinator = output.slice(output.indexOf("--- coordinator"));
    expect(coordinator).toMatch(/^released [0-9a-f-]{36} to prod \(acme\/web\)$/m);
    // The audit trail lists the two approvals (Alice's attempt was refused, not recorded).
    expect(output).toMatch(/"entries":\[\{[^\]]*"username":"bob"[^\]]*"username":"carol"/);
  }, 120_000);
});
