import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalRequestService, ApprovalRequestState } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { type Cast, cast, expectCode, registerIntent } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { ManualClock, startTestServer, type TestServer } from "./support/server.js";

const START = Date.parse("2026-06-01T00:00:00Z");
const clock = new ManualClock(START);
let server: TestServer;
let t: Cast;

/** A project of its own per behaviour, with one approval policy on prod. */
async function gated(name: string, value: Record<string, unknown>): Promise<{ organisation: string; project: string }> {
  const project = { organisation: "acme", project: name };
  await server.client(PolicyService, t.ada).createPolicy({
    project,
    name: "gate",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1, ...value } },
  });
  return project;
}

beforeAll(async () => {
  server = await startTestServer({ clock });
  t = await cast();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const policy = (tok: string) => server.client(PolicyService, tok);
const requests = (tok: string) => server.client(ApprovalRequestService, tok);

describe(`approval requests at the gate on ${testDatabaseKind()}`, () => {
  it("the first EvaluatePolicies that finds the approval unsatisfied opens the request; passing approves it", async () => {
    const project = await gated("evaluated", {});
    const id = await registerIntent(server, t.pipeline, project);
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    const first = await policy(t.pipeline).evaluatePolicies(at);
    expect(first.allPassed).toBe(false);
    const opened = await requests(t.bob).getApprovalRequest(at);
    expect(opened.request).toMatchObject({ state: ApprovalRequestState.PENDING, openedBy: "evaluation", requestedBy: "deploy-bot" });
    expect(first.evaluations[0]?.externalApprovalState).toMatchObject({ requestId: opened.request?.id, requestState: "pending" });
    // A second evaluation opens nothing new.
    await policy(t.pipeline).evaluatePolicies(at);
    expect((await requests(t.bob).getApprovalRequest(at)).earlier).toEqual([]);
    const vote = await policy(t.bob).externalApproveRelease(at);
    expect(vote.state).toMatchObject({ currentApprovals: 1, requestId: opened.request?.id, requestState: "approved" });
    const after = await policy(t.pipeline).evaluatePolicies(at);
    expect(after.allPassed).toBe(true);
    expect((await requests(t.bob).getApprovalRequest(at)).request).toMatchObject({
      id: opened.request?.id,
      state: ApprovalRequestState.APPROVED,
      decidedBy: "bob",
    });
  });

  it("a Forest client's vote on an intent without a request opens one (opened_by vote) and counts on it", async () => {
    const project = await gated("forest-vote", { requiredApprovals: 2 });
    const id = await registerIntent(server, t.pipeline, project);
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    const res = await policy(t.bob).externalApproveRelease(at);
    expect(res.state).toMatchObject({ currentApprovals: 1, requestState: "pending" });
    const got = await requests(t.carol).getApprovalRequest(at);
    expect(got.request).toMatchObject({ id: res.state?.requestId, openedBy: "vote", requestedBy: "bob", currentApprovals: 1 });
    const state = await policy(t.carol).getExternalApprovalState(at);
    expect(state.state).toMatchObject({ requestId: res.state?.requestId, requestState: "pending", currentApprovals: 1 });
  });

  it("a vote on a cancelled request is FAILED_PRECONDITION; evaluation does not reopen; a new request starts with no votes", async () => {
    const project = await gated("cancelled", { requiredApprovals: 2 });
    const id = await registerIntent(server, t.pipeline, project);
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    await policy(t.bob).externalApproveRelease(at);
    const first = (await requests(t.bob).getApprovalRequest(at)).request!;
    await requests(t.ada).cancelApprovalRequest({ ...at, reason: "wrong build" });
    const when = clock.now().toISOString();
    await expectCode(
      policy(t.carol).externalApproveRelease(at),
      Code.FailedPrecondition,
      `target_environment: approval request ${first.id} for release intent ${id} in prod was cancelled by ada at ${when}: wrong build; open a new one with RequestApproval (releasegate request)`,
    );
    const evaluated = await policy(t.pipeline).evaluatePolicies(at);
    expect(evaluated.evaluations[0]).toMatchObject({
      passed: false,
      reason: `approval request ${first.id} cancelled by ada at ${when}: wrong build; ask again with RequestApproval (releasegate request)`,
    });
    expect((await requests(t.bob).getApprovalRequest(at)).request?.id).toBe(first.id);
    const again = await requests(t.pipeline).requestApproval(at);
    expect(again.request).toMatchObject({ state: ApprovalRequestState.PENDING, currentApprovals: 0 });
    // Bob's approval belonged to the cancelled request: it does not count now.
    const state = await policy(t.carol).getExternalApprovalState(at);
    expect(state.state).toMatchObject({ currentApprovals: 0, decisions: [], requestId: again.request?.id });
    const carol = await policy(t.carol).externalApproveRelease(at);
    expect(carol.state?.decisions.map((d) => d.userId)).toEqual(["carol"]);
  });

  it("max_approval_age_seconds: an approval older than it stops counting at evaluation, naming whose and when", async () => {
    const project = await gated("aged", { requiredApprovals: 2, maxApprovalAgeSeconds: 600n });
    const id = await registerIntent(server, t.pipeline, project);
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    await policy(t.bob).externalApproveRelease(at);
    const bobAt = clock.now().getTime();
    clock.advance(601);
    const res = await policy(t.pipeline).evaluatePolicies(at);
    expect(res.evaluations[0]).toMatchObject({
      passed: false,
      reason: `awaiting approval: 0/2; approval by bob lapsed at ${new Date(bobAt + 600_000).toISOString()} (max approval age 600s)`,
    });
  });

  it("reject_blocks on: an eligible voter's rejection rejects the request and blocks the gate", async () => {
    const project = await gated("blocking", { requiredApprovals: 2, rejectBlocks: true });
    const id = await registerIntent(server, t.pipeline, project);
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    await policy(t.bob).externalApproveRelease(at);
    const res = await policy(t.carol).externalRejectRelease({ ...at, comment: "breaks checkout" });
    expect(res.state).toMatchObject({ requestState: "rejected" });
    const got = await requests(t.bob).getApprovalRequest(at);
    expect(got.request).toMatchObject({
      state: ApprovalRequestState.REJECTED,
      decidedBy: "carol",
      reason: "rejected by carol (policy 'gate' blocks on a rejection)",
    });
    const evaluated = await policy(t.pipeline).evaluatePolicies(at);
    expect(evaluated.evaluations[0]?.passed).toBe(false);
    expect(evaluated.evaluations[0]?.reason).toMatch(/^approval request \S+ rejected by carol at .*: rejected by carol/);
    await expectCode(policy(t.alice).externalApproveRelease(at), Code.PermissionDenied, /author/);
    await expectCode(policy(t.ada).externalApproveRelease(at), Code.FailedPrecondition, /was rejected by carol/);
  });

  it("reject_blocks off (Forest): a rejection is just a vote and the request stays pending", async () => {
    const project = await gated("non-blocking", { requiredApprovals: 2 });
    const id = await registerIntent(server, t.pipeline, project);
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    await policy(t.carol).externalRejectRelease(at);
    await policy(t.bob).externalApproveRelease(at);
    const done = await policy(t.ada).externalApproveRelease(at);
    expect(done.state).toMatchObject({ currentApprovals: 2, requestState: "approved" });
  });
});
