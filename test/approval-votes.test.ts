import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import {
  type Cast,
  cast,
  createApprovalPolicy,
  expectCode,
  registerIntent,
} from "./support/approval-fixtures.js";
import { startTestServer, type TestServer } from "./support/server.js";

const project = { organisation: "acme", project: "web" };
let server: TestServer;
let t: Cast;

beforeAll(async () => {
  server = await startTestServer();
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
});
afterAll(() => server?.stop());

const policy = (tok: string) => server.client(PolicyService, tok);
const target = (id: string) => ({ project, releaseIntentId: id, targetEnvironment: "prod" });
/** A bypass needs a written reason of at least 10 characters. */
const REASON = "incident 42: hotfix cannot wait";

describe("approve, reject, state", () => {
  it("counts approvals of different members and shows them in the order first cast", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const first = await policy(t.bob).externalApproveRelease({ ...target(id), comment: "lgtm" });
    expect(first.state).toMatchObject({ requiredApprovals: 2, currentApprovals: 1 });
    expect(first.state?.decisions).toMatchObject([
      { userId: "bob", username: "Bob", decision: "approved", decisionKind: "peer", comment: "lgtm" },
    ]);
    const second = await policy(t.carol).externalApproveRelease(target(id));
    expect(second.state?.currentApprovals).toBe(2);
    expect(second.state?.decisions.map((d) => d.userId)).toEqual(["bob", "carol"]);
    expect(second.state?.decisions[1]?.comment).toBeUndefined();
    const read = await policy(t.alice).getExternalApprovalState(target(id));
    expect(read.state).toEqual(second.state);
  });

  it("lets EvaluatePolicies pass once the approvals reach required_approvals", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const evaluate = () => policy(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: id });
    await policy(t.bob).externalApproveRelease(target(id));
    const before = await evaluate();
    expect(before.allPassed).toBe(false);
    expect(before.evaluations[0]).toMatchObject({ passed: false, reason: "awaiting approval: 1/2" });
    await policy(t.carol).externalApproveRelease(target(id));
    const after = await evaluate();
    expect(after.allPassed).toBe(true);
    expect(after.evaluations[0]?.externalApprovalState).toMatchObject({ requiredApprovals: 2, currentApprovals: 2 });
  });

  it("fills the approval state without a release intent as not passed, 0/N", async () => {
    const res = await policy(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod" });
    expect(res.evaluations[0]).toMatchObject({
      passed: false,
      reason: "approval required — no release intent",
      externalApprovalState: { requiredApprovals: 2, currentApprovals: 0, decisions: [] },
    });
  });

  it("treats a rejection as a changeable vote while the request is pending, keeping first-cast order", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await policy(t.bob).externalApproveRelease(target(id));
    const rejected = await policy(t.bob).externalRejectRelease({ ...target(id), comment: "found a bug" });
    expect(rejected.state?.currentApprovals).toBe(0);
    const carol = await policy(t.carol).externalApproveRelease(target(id));
    expect(carol.state?.currentApprovals).toBe(1);
    expect(carol.state?.decisions.map((d) => [d.userId, d.decision])).toEqual([
      ["bob", "rejected"],
      ["carol", "approved"],
    ]);
    const again = await policy(t.bob).externalApproveRelease(target(id));
    expect(again.state?.currentApprovals).toBe(2);
    expect(again.state?.decisions.map((d) => [d.userId, d.decision])).toEqual([
      ["bob", "approved"],
      ["carol", "approved"],
    ]);
    // The gate passed: the request is approved, which is final; a later rejection is refused saying so.
    await expectCode(
      policy(t.bob).externalRejectRelease(target(id)),
      Code.FailedPrecondition,
      /^target_environment: approval request \S+ for release intent \S+ in prod was approved by bob at .*; the approval gate has passed and takes no more votes$/,
    );
  });

  it("lets the author reject their own release intent", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const res = await policy(t.alice).externalRejectRelease(target(id));
    expect(res.state?.decisions).toMatchObject([{ userId: "alice", decision: "rejected", decisionKind: "peer" }]);
  });

  it("serves the short aliases with the same behaviour", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const a = await policy(t.bob).approveRelease(target(id));
    expect(a.state?.currentApprovals).toBe(1);
    const r = await policy(t.bob).rejectRelease(target(id));
    expect(r.state?.decisions).toMatchObject([{ userId: "bob", decision: "rejected" }]);
    const s = await policy(t.carol).getApprovalState(target(id));
    expect(s.state).toEqual(r.state);
    await expectCode(policy(t.alice).approveRelease(target(id)), Code.PermissionDenied, /author/);
  });

  it("serves the approval RPCs over Connect JSON on HTTP/1.1 too", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const client = createClient(PolicyService, server.connect(t.bob));
    const res = await client.externalApproveRelease(target(id));
    expect(res.state?.currentApprovals).toBe(1);
  });
});

describe("four-eyes rule and bypass", () => {
  it("rejects self-approval without bypass", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(
      policy(t.alice).externalApproveRelease(target(id)),
      Code.PermissionDenied,
      `alice is the author of release intent ${id} and cannot approve it; an organisation admin author may pass force_bypass`,
    );
  });

  it("records an admin author's force_bypass approval as admin_override, in the history too", async () => {
    const id = await registerIntent(server, t.pipeline, project, "ada");
    await expectCode(policy(t.ada).externalApproveRelease(target(id)), Code.PermissionDenied, /author/);
    const res = await policy(t.ada).externalApproveRelease({ ...target(id), forceBypass: true, comment: "hotfix for the outage" });
    expect(res.state?.decisions).toMatchObject([{ userId: "ada", decisionKind: "admin_override", comment: "hotfix for the outage" }]);
    const history = await server
      .client(ApprovalAuditService, t.bob)
      .listApprovalHistory({ project, releaseIntentId: id });
    // The vote opened the intent's approval request (Forest clients vote without asking), then counted on it.
    expect(history.entries).toMatchObject([
      { userId: "ada", decision: "pending", decisionKind: "request_pending", previousDecision: "" },
      { userId: "ada", decision: "approved", decisionKind: "admin_override", previousDecision: "", comment: "hotfix for the outage" },
    ]);
  });

  it("denies force_bypass from a non-admin, author or not", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(
      policy(t.alice).externalApproveRelease({ ...target(id), forceBypass: true, comment: REASON }),
      Code.PermissionDenied,
      /^force_bypass: only an organisation admin/,
    );
    await expectCode(
      policy(t.bob).externalApproveRelease({ ...target(id), forceBypass: true, comment: REASON }),
      Code.PermissionDenied,
      /^force_bypass:/,
    );
  });

  it("refuses force_bypass without a reason of at least 10 characters, before authorisation", async () => {
    const id = await registerIntent(server, t.pipeline, project, "ada");
    const refusal = "comment: a bypass needs a reason (at least 10 characters)";
    for (const comment of [undefined, "", "hotfix", "  123456789  ", "\t\n         \n"])
      await expectCode(
        policy(t.ada).externalApproveRelease({ ...target(id), forceBypass: true, comment }),
        Code.InvalidArgument,
        refusal,
      );
    // A shape check: a member (who may not bypass at all) hears about the reason first.
    await expectCode(
      policy(t.bob).externalApproveRelease({ ...target(id), forceBypass: true, comment: "short" }),
      Code.InvalidArgument,
      refusal,
    );
    // Nothing was written by the refused requests.
    const state = await policy(t.bob).getExternalApprovalState(target(id));
    expect(state.state?.decisions).toEqual([]);
    // Exactly ten characters after trimming is enough.
    const ok = await policy(t.ada).externalApproveRelease({ ...target(id), forceBypass: true, comment: "  1234567890  " });
    expect(ok.state?.decisions).toMatchObject([{ userId: "ada", decisionKind: "admin_override", comment: "  1234567890  " }]);
  });

  it("treats force_bypass from an admin who is not the author as a peer vote", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const res = await policy(t.ada).externalApproveRelease({ ...target(id), forceBypass: true, comment: REASON });
    expect(res.state?.decisions).toMatchObject([{ userId: "ada", decisionKind: "peer" }]);
  });

  it("denies votes from service accounts and from callers outside the organisation", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(policy(t.pipeline).externalApproveRelease(target(id)), Code.PermissionDenied, /service account deploy-bot may not approval.vote/);
    await expectCode(policy(t.pipeline).externalRejectRelease(target(id)), Code.PermissionDenied, /service account/);
    await expectCode(policy(t.mallory).externalApproveRelease(target(id)), Code.PermissionDenied, /no role in organisation acme/);
    await expectCode(policy(t.mallory).getExternalApprovalState(target(id)), Code.PermissionDenied, /no role/);
  });
});

describe("not found and invalid input", () => {
  it("answers NOT_FOUND for an unknown release intent", async () => {
    const id = randomUUID();
    await expectCode(policy(t.bob).externalApproveRelease(target(id)), Code.NotFound, `release_intent_id: release intent ${id} not found in acme/web`);
    await expectCode(policy(t.bob).getExternalApprovalState(target(id)), Code.NotFound, /not found/);
  });

  it("answers NOT_FOUND for an intent of another project", async () => {
    const other = { organisation: "acme", project: "api" };
    const id = await registerIntent(server, t.pipeline, other);
    await createApprovalPolicy(server, t.ada, other, "one-approval", "prod", 1);
    await expectCode(policy(t.bob).externalApproveRelease(target(id)), Code.NotFound, /not found in acme\/web/);
    const ok = await policy(t.bob).externalApproveRelease({ ...target(id), project: other });
    expect(ok.state?.currentApprovals).toBe(1);
  });

  it("answers NOT_FOUND when no enabled approval policy gates the environment", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(
      policy(t.bob).externalApproveRelease({ ...target(id), targetEnvironment: "staging" }),
      Code.NotFound,
      "target_environment: no enabled external approval policy for staging in acme/web",
    );
    await createApprovalPolicy(server, t.ada, project, "staging-gate", "staging", 1);
    await policy(t.ada).updatePolicy({ project, name: "staging-gate", enabled: false });
    await expectCode(
      policy(t.bob).externalApproveRelease({ ...target(id), targetEnvironment: "staging" }),
      Code.NotFound,
      /no enabled external approval policy/,
    );
    await expectCode(
      policy(t.bob).getExternalApprovalState({ ...target(id), targetEnvironment: "staging" }),
      Code.NotFound,
      /no enabled external approval policy/,
    );
  });

  it("answers INVALID_ARGUMENT for a malformed UUID, naming the field", async () => {
    await expectCode(policy(t.bob).externalApproveRelease(target("not-a-uuid")), Code.InvalidArgument, "release_intent_id: must be a UUID");
    await expectCode(policy(t.bob).getApprovalState(target("")), Code.InvalidArgument, "release_intent_id: is required");
    await expectCode(
      policy(t.bob).externalRejectRelease({ ...target(randomUUID()), targetEnvironment: "" }),
      Code.InvalidArgument,
      "target_environment: is required",
    );
  });

  it("accepts a 2000-character comment and rejects 2001 with INVALID_ARGUMENT", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const ok = await policy(t.bob).externalApproveRelease({ ...target(id), comment: "x".repeat(2000) });
    expect(ok.state?.decisions[0]?.comment).toHaveLength(2000);
    await expectCode(
      policy(t.carol).externalApproveRelease({ ...target(id), comment: "x".repeat(2001) }),
      Code.InvalidArgument,
      "comment: must be at most 2000 characters (got 2001)",
    );
    await expectCode(
      policy(t.carol).externalRejectRelease({ ...target(id), comment: "y".repeat(2001) }),
      Code.InvalidArgument,
      /^comment:/,
    );
  });
});

describe("several approval policies for one environment", () => {
  it("evaluates each with its own threshold; votes show the strictest", async () => {
    const p = { organisation: "acme", project: "multi" };
    await createApprovalPolicy(server, t.ada, p, "one-approval", "prod", 1);
    await createApprovalPolicy(server, t.ada, p, "three-approvals", "prod", 3);
    const id = await registerIntent(server, t.pipeline, p);
    const res = await policy(t.bob).externalApproveRelease({ project: p, releaseIntentId: id, targetEnvironment: "prod" });
    expect(res.state).toMatchObject({ requiredApprovals: 3, currentApprovals: 1 });
    const evaluation = await policy(t.bob).evaluatePolicies({ project: p, targetEnvironment: "prod", releaseIntentId: id });
    expect(evaluation.evaluations.map((e) => [e.policyName, e.passed, e.externalApprovalState?.requiredApprovals])).toEqual([
      ["one-approval", true, 1],
      ["three-approvals", false, 3],
    ]);
    expect(evaluation.allPassed).toBe(false);
  });
});

describe("history", () => {
  it("appends every vote, change and bypass with the previous decision, read in pages", async () => {
    const p = { organisation: "acme", project: "audited" };
    await createApprovalPolicy(server, t.ada, p, "two-approvals", "prod", 2);
    const id = await registerIntent(server, t.pipeline, p, "ada");
    const vote = { project: p, releaseIntentId: id, targetEnvironment: "prod" };
    await policy(t.bob).externalApproveRelease(vote);
    await policy(t.bob).externalRejectRelease({ ...vote, comment: "wait" });
    await policy(t.bob).externalApproveRelease(vote);
    await policy(t.carol).externalRejectRelease(vote);
    // The second approval passes the gate: the vote's request becomes approved in the same transaction.
    await policy(t.ada).externalApproveRelease({ ...vote, forceBypass: true, comment: REASON });

    const audit = server.client(ApprovalAuditService, t.alice);
    const seen: string[] = [];
    const sequences: bigint[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await audit.listApprovalHistory({ project: p, pageSize: 2, pageToken });
      pages++;
      expect(page.entries.length).toBeLessThanOrEqual(2);
      for (const e of page.entries) {
        seen.push(`${e.userId}:${e.previousDecision || "-"}>${e.decision}:${e.decisionKind}`);
        sequences.push(e.sequence);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(pages).toBe(4);
    expect(seen).toEqual([
      "bob:->pending:request_pending",
      "bob:->approved:peer",
      "bob:approved>rejected:peer",
      "bob:rejected>approved:peer",
      "carol:->rejected:peer",
      "ada:->approved:admin_override",
      "ada:pending>approved:request_approved",
    ]);
    expect([...sequences].sort((a, b) => (a < b ? -1 : 1))).toEqual(sequences);
  });

  it("filters by release intent and environment", async () => {
    const p = { organisation: "acme", project: "filtered" };
    await createApprovalPolicy(server, t.ada, p, "gate", "prod", 1);
    const a = await registerIntent(server, t.pipeline, p);
    const b = await registerIntent(server, t.pipeline, p);
    await policy(t.bob).externalApproveRelease({ project: p, releaseIntentId: a, targetEnvironment: "prod" });
    await policy(t.bob).externalApproveRelease({ project: p, releaseIntentId: b, targetEnvironment: "prod" });
    const audit = server.client(ApprovalAuditService, t.alice);
    const onlyB = await audit.listApprovalHistory({ project: p, releaseIntentId: b });
    // b's request opened, bob's vote, and the request approved by it.
    expect(onlyB.entries.map((e) => [e.releaseIntentId, e.decisionKind])).toEqual([
      [b, "request_pending"],
      [b, "peer"],
      [b, "request_approved"],
    ]);
    expect(onlyB.nextPageToken).toBe("");
    const none = await audit.listApprovalHistory({ project: p, targetEnvironment: "staging" });
    expect(none.entries).toEqual([]);
  });

  it("rejects a forged page token, a token for other filters and a negative page size", async () => {
    const audit = server.client(ApprovalAuditService, t.alice);
    await expectCode(audit.listApprovalHistory({ project, pageToken: "garbage!" }), Code.InvalidArgument, /^page_token:/);
    const p = { organisation: "acme", project: "audited" };
    const page = await audit.listApprovalHistory({ project: p, pageSize: 1 });
    expect(page.nextPageToken).not.toBe("");
    await expectCode(
      audit.listApprovalHistory({ project: p, pageSize: 1, pageToken: page.nextPageToken, targetEnvironment: "prod" }),
      Code.InvalidArgument,
      /page_token: was issued for other filters/,
    );
    await expectCode(audit.listApprovalHistory({ project, pageSize: -1 }), Code.InvalidArgument, "page_size: must not be negative");
    await expectCode(audit.listApprovalHistory({ project, releaseIntentId: "nope" }), Code.InvalidArgument, "release_intent_id: must be a UUID");
  });

  it("is denied to callers outside the organisation", async () => {
    await expectCode(
      server.client(ApprovalAuditService, t.mallory).listApprovalHistory({ project }),
      Code.PermissionDenied,
      /no role in organisation acme/,
    );
  });

  it("cannot be changed, even directly in the database", async () => {
    const db = server.app.database.db;
    await expect(sql`update approval_history set decision = 'approved'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from approval_history`.execute(db)).rejects.toThrow(/append-only/);
  });
});
