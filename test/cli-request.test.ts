import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// `releasegate request`, `requests` and `cancel` against a running server
// (the built CLI, over gRPC), on the engine DATABASE_URL selects.

let server: TestServer;
const env: Record<string, Record<string, string>> = {};
const where = { organisation: "acme", project: "req-cli" };
let intent: string;

beforeAll(async () => {
  await ensureBuilt();
  server = await startTestServer();
  for (const [sub, role, service] of [
    ["ada", "admin", false],
    ["carol", "member", false],
    ["deploy-bot", "member", true],
  ] as const)
    env[sub] = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await token({ sub, orgs: { acme: role }, service }) };
  await server.client(PolicyService, env.ada!.RELEASEGATE_TOKEN!).createPolicy({
    project: where,
    name: "two-eyes",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
  });
  intent = randomUUID();
  await server
    .client(ReleaseService, env["deploy-bot"]!.RELEASEGATE_TOKEN!)
    .registerReleaseIntent({ project: where, releaseIntentId: intent, authorUserId: "alice", branch: "main", version: "1.0.0" });
}, 240_000);
afterAll(() => server?.stop());

const args = () => ["-p", "acme/req-cli", "-i", intent, "-e", "prod"];

describe("releasegate request, requests and cancel", () => {
  it("opens a request once (a second call returns it), shows it, and lets nobody but the parties or an admin cancel it", async () => {
    const first = await runCli(["-o", "json", "request", ...args()], env["deploy-bot"]);
    expect(first.code, first.stderr).toBe(0);
    const opened = JSON.parse(first.stdout) as { created: boolean; request: { id: string; state: string; openedBy: string } };
    expect(opened).toMatchObject({ created: true, request: { state: "APPROVAL_REQUEST_STATE_PENDING", openedBy: "request" } });

    const again = await runCli(["request", ...args()], env["deploy-bot"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/CREATED\s+false/);
    expect(again.stdout).toContain(opened.request.id);
    expect(again.stdout).toMatch(/STATE\s+pending/);

    const shown = await runCli(["requests", ...args()], env.carol);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/APPROVALS\s+0\/1/);

    // carol is neither the author, the registrant nor an admin.
    const refused = await runCli(["cancel", ...args()], env.carol);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/permission_denied|PERMISSION_DENIED|may not/i);

    const cancelled = await runCli(["cancel", ...args(), "--reason", "wrong build"], env.ada);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toMatch(/STATE\s+cancelled/);
    expect(cancelled.stdout).toContain("wrong build");

    // Nothing pending any more: FAILED_PRECONDITION, exit 3, and the history shows the cancelled one.
    const twice = await runCli(["cancel", ...args()], env.ada);
    expect(twice.code).toBe(3);
    const history = await runCli(["requests", ...args()], env.carol);
    expect(history.stdout).toMatch(/STATE\s+cancelled/);

    // Asking again opens a fresh request with no votes.
    const fresh = await runCli(["-o", "json", "request", ...args()], env["deploy-bot"]);
    const reopened = JSON.parse(fresh.stdout) as { created: boolean; request: { id: string; currentApprovals?: number } };
    expect(reopened.created).toBe(true);
    expect(reopened.request.id).not.toBe(opened.request.id);
    expect(reopened.request.currentApprovals ?? 0).toBe(0);
  });

  it("is a usage error (exit 2) without the intent", async () => {
    const r = await runCli(["request", "-p", "acme/req-cli", "-e", "prod"], env.ada);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--intent");
  });
});
