import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalRequestService, type PendingApproval } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { ApproverService } from "../src/gen/releasegate/v1/approver_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

// The approver's inbox (issue 13) over the wire, on Postgres (DATABASE_URL) or PGlite:
// who sees which pending request, filters, paging, admins' `all`, and the count.
//
// The cast in acme: alice authors every intent but one (bob's); regi (an admin) registers
// one intent on alice's behalf; rob and dana are in group sre (dana until
// an hour after the start); vic is a viewer; mallory is in another organisation.
// Policies: web gates prod and staging without rules (any member approves);
// api gates prod with the rule "1 from sre".

const start = Date.parse("2026-06-01T10:00:00Z");
const clock = new ManualClock(start);
let server: TestServer;
const tokens: Record<string, string> = {};
/** Request ids by label, in the order they were opened (oldest first). */
const req: Record<string, string> = {};
const intentOf: Record<string, string> = {};

const acme = (project: string) => ({ organisation: "acme", project });

async function createIntent(registrar: string, project: string, author: string, version: string): Promise<string> {
  const id = randomUUID();
  await server.client(ReleaseService, tokens[registrar]).registerReleaseIntent({
    project: acme(project),
    releaseIntentId: id,
    authorUserId: author,
    branch: "main",
    version,
  });
  return id;
}

/** Opens the approval request of an intent and environment, as a pipeline step does. */
async function openRequest(intentId: string, project: string, environment: string): Promise<string> {
  const now = clock.now();
  const id = randomUUID();
  await server.db.database.db
    .insertInto("approval_requests")
    .values({
      id,
      organisation: "acme",
      project,
      release_intent_id: intentId,
      environment,
      state: "pending",
      requested_by_user_id: "deploy-bot",
      requested_by_actor_type: "service",
      opened_by: "request",
      requested_at: now,
      updated_at: now,
    })
    .execute();
  return id;
}

const inbox = (who: string, q: { project?: string; targetEnvironment?: string; all?: boolean; pageSize?: number; pageToken?: string } = {}) =>
  server.client(ApprovalRequestService, tokens[who]).listPendingApprovals({ organisation: "acme", ...q });
const count = (who: string, q: { project?: string; targetEnvironment?: string; all?: boolean } = {}) =>
  server.client(ApprovalRequestService, tokens[who]).countPendingApprovals({ organisation: "acme", ...q });
const labels = (items: readonly PendingApproval[]) =>
  items.map((a) => Object.entries(req).find(([, id]) => id === a.request?.id)?.[0] ?? a.request?.id);

beforeAll(async () => {
  server = await startTestServer({ clock });
  for (const [sub, role] of [
    ["ada", "admin"],
    ["alice", "member"],
    ["bob", "member"],
    ["carol", "member"],
    ["regi", "admin"],
    ["rob", "member"],
    ["dana", "member"],
    ["vic", "viewer"],
  ] as const)
    tokens[sub] = await token({ sub, name: sub, orgs: { acme: role } });
  tokens.pipeline = await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true });
  tokens.mallory = await token({ sub: "mallory", orgs: { other: "admin" } });

  const dir = server.client(ApproverService, tokens.ada);
  await dir.createApproverGroup({ organisation: "acme", name: "sre" });
  await dir.addGroupMember({ organisation: "acme", group: "sre", userId: "rob", scope: "organisation" });
  await dir.addGroupMember({
    organisation: "acme",
    group: "sre",
    userId: "dana",
    scope: "organisation",
    expiresAt: new Date(start + 3600_000).toISOString(),
  });
  const policies = server.client(PolicyService, tokens.ada);
  for (const environment of ["prod", "staging"])
    await policies.createPolicy({
      project: acme("web"),
      name: `gate-${environment}`,
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: { case: "externalApproval", value: { targetEnvironment: environment, requiredApprovals: 2 } },
    });
  await policies.createPolicy({
    project: acme("api"),
    name: "gate",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: {
      case: "externalApproval",
      value: { targetEnvironment: "prod", requiredApprovals: 1, rules: [{ group: "sre", requiredApprovals: 1 }] },
    },
  });

  // Oldest first: webProd (t0), webStaging (+60 s, registered by regi), apiProd (+120 s), bobsWeb (+180 s, bob's).
  intentOf.webProd = await createIntent("pipeline", "web", "alice", "1.0.0");
  req.webProd = await openRequest(intentOf.webProd, "web", "prod");
  clock.advance(60);
  intentOf.webStaging = await createIntent("regi", "web", "alice", "1.1.0");
  req.webStaging = await openRequest(intentOf.webStaging, "web", "staging");
  clock.advance(60);
  intentOf.apiProd = await createIntent("pipeline", "api", "alice", "2.0.0");
  req.apiProd = await openRequest(intentOf.apiProd, "api", "prod");
  clock.advance(60);
  intentOf.bobsWeb = await createIntent("pipeline", "web", "bob", "1.2.0");
  req.bobsWeb = await openRequest(intentOf.bobsWeb, "web", "prod");
  clock.advance(60);
}, 120_000);
afterAll(() => server?.stop());

describe("who sees a pending request", () => {
  it("shows a member the requests of policies without rules, but not their own intent's", async () => {
    expect(labels((await inbox("bob")).approvals)).toEqual(["webProd", "webStaging"]);
    expect(labels((await inbox("carol")).approvals)).toEqual(["webProd", "webStaging", "bobsWeb"]);
  });

  it("leaves out the author's own requests", async () => {
    expect(labels((await inbox("alice")).approvals)).toEqual(["bobsWeb"]);
  });

  it("leaves out the requests of an intent the caller registered for someone else", async () => {
    expect(labels((await inbox("regi")).approvals)).toEqual(["webProd", "bobsWeb"]);
  });

  it("shows a request gated by a group rule only to the group's members", async () => {
    expect(labels((await inbox("rob")).approvals)).toEqual(["webProd", "webStaging", "apiProd", "bobsWeb"]);
    expect(labels((await inbox("carol", { project: "api" })).approvals)).toEqual([]);
  });

  it("stops showing it when the membership expires (server clock)", async () => {
    expect(labels((await inbox("dana", { project: "api" })).approvals)).toEqual(["apiProd"]);
    const before = clock.now();
    clock.set(new Date(start + 3600_000));
    try {
      expect(labels((await inbox("dana", { project: "api" })).approvals)).toEqual([]);
      expect((await count("dana", { project: "api" })).count).toBe(0);
      expect(labels((await inbox("rob", { project: "api" })).approvals)).toEqual(["apiProd"]);
    } finally {
      clock.set(before);
    }
  });

  for (const protocol of PROTOCOLS)
    it(`describes each request: intent, who asked, age and progress (${protocol})`, async () => {
      const client = server.client(ApprovalRequestService, tokens.rob, protocol);
      const { approvals } = await client.listPendingApprovals({ organisation: "acme", project: "api" });
      expect(approvals).toHaveLength(1);
      const [a] = approvals;
      expect(a?.ageSeconds).toBe(BigInt(120));
      expect(a?.request).toMatchObject({
        id: req.apiProd,
        project: { organisation: "acme", project: "api" },
        releaseIntentId: intentOf.apiProd,
        targetEnvironment: "prod",
        requestedBy: "deploy-bot",
        requestedByActorType: "service",
        openedBy: "request",
        requestedAt: new Date(start + 120_000).toISOString(),
        authorUserId: "alice",
        branch: "main",
        version: "2.0.0",
        currentApprovals: 0,
        requiredApprovals: 1,
      });
      expect(a?.request?.ruleProgress.map((p) => [p.rule, p.currentApprovals, p.requiredApprovals, p.mayStillApprove])).toEqual([
        ["group:sre", 0, 1, ["dana", "rob"]],
      ]);
    });
});

describe("filters and paging", () => {
  it("filters by project and by environment (names folded)", async () => {
    expect(labels((await inbox("carol", { project: "web" })).approvals)).toEqual(["webProd", "webStaging", "bobsWeb"]);
    expect(labels((await inbox("carol", { targetEnvironment: "staging" })).approvals)).toEqual(["webStaging"]);
    expect(labels((await inbox("rob", { targetEnvironment: "PROD" })).approvals)).toEqual(["webProd", "apiProd", "bobsWeb"]);
    expect(labels((await inbox("rob", { project: "api", targetEnvironment: "staging" })).approvals)).toEqual([]);
  });

  it("pages oldest first with an opaque token", async () => {
    const seen: string[] = [];
    let pageToken = "";
    const tokensSeen: string[] = [];
    for (let page = 0; page < 5; page++) {
      const r = await inbox("carol", { pageSize: 1, pageToken });
      expect(r.approvals.length).toBeLessThanOrEqual(1);
      seen.push(...(labels(r.approvals) as string[]));
      pageToken = r.nextPageToken;
      if (pageToken === "") break;
      tokensSeen.push(pageToken);
    }
    expect(seen).toEqual(["webProd", "webStaging", "bobsWeb"]);
    expect(tokensSeen).toHaveLength(2);
  });

  it("refuses a page token issued for other filters, and a forged one", async () => {
    const { nextPageToken } = await inbox("carol", { pageSize: 1 });
    await expectRpcError(
      inbox("carol", { pageSize: 1, pageToken: nextPageToken, project: "web" }),
      Code.InvalidArgument,
      "page_token: was issued for other filters (project, target_environment, all); start again without it",
    );
    await expectRpcError(inbox("carol", { pageToken: "not-a-token" }), Code.InvalidArgument, "page_token: is not a token from a previous response");
  });

  it("refuses malformed filters and page sizes before authorisation", async () => {
    await expectRpcError(inbox("mallory", { targetEnvironment: "prod env" }), Code.InvalidArgument, /^target_environment: "prod env" is not a valid environment name/);
    await expectRpcError(inbox("mallory", { pageSize: -1 }), Code.InvalidArgument, "page_size: must not be negative");
    await expectRpcError(
      server.client(ApprovalRequestService, tokens.mallory).listPendingApprovals({ organisation: "" }),
      Code.InvalidArgument,
      "organisation: is required",
    );
  });
});

describe("all and who may ask", () => {
  it("lists every pending request of the organisation for an admin", async () => {
    expect(labels((await inbox("ada", { all: true })).approvals)).toEqual(["webProd", "webStaging", "apiProd", "bobsWeb"]);
    expect((await count("ada", { all: true })).count).toBe(4);
    // The admin's own inbox: what an admin may vote on (not in sre).
    expect(labels((await inbox("ada")).approvals)).toEqual(["webProd", "webStaging", "bobsWeb"]);
  });

  it("refuses all to a member", async () => {
    await expectRpcError(
      inbox("bob", { all: true }),
      Code.PermissionDenied,
      "all: only an organisation admin may list every pending request of acme (bob is a member); leave all unset to list the requests you may approve",
    );
    await expectRpcError(count("bob", { all: true }), Code.PermissionDenied, /^all: only an organisation admin/);
  });

  it("refuses viewers, outsiders and services", async () => {
    await expectRpcError(inbox("vic"), Code.PermissionDenied, /^viewer vic may not vote in organisation acme, so has no inbox there/);
    await expectRpcError(count("vic"), Code.PermissionDenied, /^viewer vic may not vote/);
    await expectRpcError(inbox("mallory"), Code.PermissionDenied, "caller mallory has no role in organisation acme");
    await expectRpcError(inbox("pipeline"), Code.PermissionDenied, /^service account deploy-bot has no inbox/);
  });

  it("counts exactly what the list returns, for every user and filter", async () => {
    for (const who of ["alice", "bob", "carol", "regi", "rob", "dana", "ada"])
      for (const q of [{}, { project: "web" }, { project: "api" }, { targetEnvironment: "prod" }]) {
        const listed = (await inbox(who, { ...q, pageSize: 200 })).approvals.length;
        expect((await count(who, q)).count, `${who} ${JSON.stringify(q)}`).toBe(listed);
      }
  });
});
