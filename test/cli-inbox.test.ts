import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatAge } from "../src/cli/inbox.js";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalRequestService } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

// `releasegate inbox` against a running server (the built CLI, over gRPC), on
// the engine DATABASE_URL selects. Two pending requests in acme/cli: alice's
// (prod, opened first) and bob's (staging).

const start = Date.parse("2026-06-01T10:00:00Z");
const clock = new ManualClock(start);
let server: TestServer;
const env: Record<string, Record<string, string>> = {};
const ids: Record<string, string> = {};
const where = { organisation: "acme", project: "cli" };

beforeAll(async () => {
  await ensureBuilt();
  server = await startTestServer({ clock });
  for (const [sub, role] of [
    ["ada", "admin"],
    ["bob", "member"],
    ["carol", "member"],
    ["vic", "viewer"],
  ] as const)
    env[sub] = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await token({ sub, orgs: { acme: role } }) };
  const pipeline = await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true });
  const admin = server.client(PolicyService, env.ada!.RELEASEGATE_TOKEN!);
  for (const environment of ["prod", "staging"])
    await admin.createPolicy({
      project: where,
      name: `gate-${environment}`,
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: { case: "externalApproval", value: { targetEnvironment: environment, requiredApprovals: 1 } },
    });
  for (const [label, author, environment, version] of [
    ["alices", "alice", "prod", "1.0.0"],
    ["bobs", "bob", "staging", "1.1.0"],
  ] as const) {
    const id = randomUUID();
    await server.client(ReleaseService, pipeline).registerReleaseIntent({
      project: where,
      releaseIntentId: id,
      authorUserId: author,
      branch: "main",
      version,
    });
    await server.client(ApprovalRequestService, pipeline).requestApproval({ project: where, releaseIntentId: id, targetEnvironment: environment });
    ids[label] = id;
    clock.advance(3 * 3600 + 5 * 60);
  }
}, 240_000);
afterAll(() => server?.stop());

describe("releasegate inbox", () => {
  it("lists what the caller may approve as a table, oldest first, with age and approvals", async () => {
    const r = await runCli(["inbox", "--org", "acme"], env.carol);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^AGE\s+PROJECT\s+ENV\s+INTENT\s+VERSION\s+BRANCH\s+AUTHOR\s+ASKED BY\s+APPROVALS\s+RULES$/);
    expect(lines.slice(1)).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^6h10m\\s+cli\\s+prod\\s+${ids.alices}\\s+1\\.0\\.0\\s+main\\s+alice\\s+deploy-bot\\s+0/1\\s+-$`));
    expect(lines[2]).toMatch(new RegExp(`^3h5m\\s+cli\\s+staging\\s+${ids.bobs}\\s+1\\.1\\.0\\s+main\\s+bob\\s+deploy-bot\\s+0/1\\s+-$`));
  });

  it("leaves out the caller's own intent and filters by project and environment", async () => {
    const bob = await runCli(["inbox", "--org", "acme"], env.bob);
    expect(bob.code).toBe(0);
    expect(bob.stdout).toContain(ids.alices);
    expect(bob.stdout).not.toContain(ids.bobs);
    const staging = await runCli(["-o", "json", "inbox", "--project", "acme/cli", "--env", "staging", "--page-size", "1"], env.carol);
    expect(staging.code).toBe(0);
    const items = staging.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(items.map((i) => [i.request.releaseIntentId, i.request.targetEnvironment, i.ageSeconds])).toEqual([
      [ids.bobs, "staging", String(3 * 3600 + 5 * 60)],
    ]);
  });

  it("follows every page", async () => {
    const r = await runCli(["-o", "json", "inbox", "--org", "acme", "--page-size", "1"], env.carol);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").map((l) => JSON.parse(l).request.releaseIntentId)).toEqual([ids.alices, ids.bobs]);
  });

  it("--count prints the number; --all lists everything for an admin", async () => {
    expect(await runCli(["inbox", "--org", "acme", "--count"], env.bob)).toMatchObject({ code: 0, stdout: "PENDING\n1\n" });
    const json = await runCli(["-o", "json", "inbox", "--org", "acme", "--count", "--all"], env.ada);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ count: 2 });
  });

  it("a refusal is exit 3 with the server's message; a missing --org is a usage error", async () => {
    const all = await runCli(["inbox", "--org", "acme", "--all"], env.bob);
    expect(all.code).toBe(3);
    expect(all.stderr).toMatch(/^error: PERMISSION_DENIED: all: only an organisation admin may list every pending request of acme/);
    const viewer = await runCli(["inbox", "--org", "acme"], env.vic);
    expect(viewer.code).toBe(3);
    expect(viewer.stderr).toMatch(/^error: PERMISSION_DENIED: viewer vic may not vote in organisation acme/);
    const usage = await runCli(["inbox"], { ...env.bob, RELEASEGATE_PROJECT: "" });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("required option '--org <organisation>' not specified");
  });

  it("formats ages for people", () => {
    expect([42n, 420n, 7500n, 3n * 86_400n + 4n * 3600n].map(formatAge)).toEqual(["42s", "7m", "2h5m", "3d4h"]);
  });
});
