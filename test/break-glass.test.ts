import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService, type ApprovalEvent } from "../src/gen/releasegate/v1/approval_pb.js";
import { BreakGlassService } from "../src/gen/releasegate/v1/break_glass_pb.js";
import { EnvironmentService } from "../src/gen/releasegate/v1/environment_pb.js";
import { type Cast, cast, createApprovalPolicy, expectCode, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "web" };
const REASON = "incident 42: payments down, the fix cannot wait for a second reviewer";
const START = Date.parse("2026-01-01T00:00:00Z");
const names = uniqueSignalNames();
const clock = new ManualClock(START);
let server: TestServer;
let nc: NatsConnection;
let evaluate: Subscription;
const evaluateIds: string[] = [];
let t: Cast;

beforeAll(async () => {
  nc = await connectSharedNats();
  evaluate = nc.subscribe("forest.intent.evaluate");
  void (async () => {
    for await (const m of evaluate) evaluateIds.push(m.string());
  })();
  server = await startTestServer({
    clock,
    env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
  t = await cast();
  const policies = server.client(PolicyService, t.ada);
  // prod: two approval policies, a soak after staging and a branch rule the intents do not meet.
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
  await createApprovalPolicy(server, t.ada, project, "one-approval", "prod", 1);
  await policies.createPolicy({
    project,
    name: "soak-after-staging",
    policyType: PolicyType.SOAK_TIME,
    config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 3600n } },
  });
  await policies.createPolicy({
    project,
    name: "release-branches",
    policyType: PolicyType.BRANCH_RESTRICTION,
    config: { case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern: "^release/" } },
  });
  // staging: its own approval policy, which a break-glass for prod must not open.
  await createApprovalPolicy(server, t.ada, project, "staging-approval", "staging", 1);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  evaluate?.unsubscribe();
  await nc?.close();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

const breakGlass = (tok: string) => server.client(BreakGlassService, tok);
const policies = (tok: string) => server.client(PolicyService, tok);
const audit = (tok: string) => server.client(ApprovalAuditService, tok);
const request = (releaseIntentId: string, over: Record<string, unknown> = {}) => ({
  project,
  releaseIntentId,
  targetEnvironment: "prod",
  reason: REASON,
  ...over,
});

/** The Prometheus text of the admin port. */
async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** `releasegate_break_glass_total` for one organisation/project/environment (0 when the series is absent). */
async function breakGlassCount(p: { organisation: string; project: string }, environment: string): Promise<number> {
  const labels = [`organisation="${p.organisation}"`, `project="${p.project}"`, `environment="${environment}"`];
  const line = (await scrape())
    .split("\n")
    .find((l) => l.startsWith("releasegate_break_glass_total{") && labels.every((x) => l.includes(x)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** Opens a Watch stream on the project and collects its events until stop(). */
async function watch(tok: string) {
  const controller = new AbortController();
  const events: ApprovalEvent[] = [];
  const stream = createClient(ApprovalAuditService, server.grpc(tok)).watchApprovalEvents(
    { project, targetEnvironment: "prod" },
    { signal: controller.signal },
  );
  const iterator = stream[Symbol.asyncIterator]();
  expect((await iterator.next()).value).toMatchObject({ subscribed: true });
  const done = (async () => {
    try {
      for (let r = await iterator.next(); !r.done; r = await iterator.next())
        if (r.value.event !== undefined) events.push(r.value.event);
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
  })();
  return {
    events,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe(`break-glass on ${testDatabaseKind()}`, () => {
  it("opens every approval policy of the intent and environment, and leaves soak and branch policies blocking", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await policies(t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    const before = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: id });
    expect(before.evaluations.find((e) => e.policyName === "two-approvals")).toMatchObject({
      passed: false,
      reason: "awaiting approval: 1/2",
    });

    clock.set(new Date(START + 3_600_000));
    const res = await breakGlass(t.ada).breakGlass(request(id));
    expect(res.recordedAt).toBe("2026-01-01T01:00:00.000Z");
    expect(res.eventId).toMatch(/^[0-9a-f-]{36}$/);

    const expected = `break-glass by ada at 2026-01-01T01:00:00.000Z: ${REASON}`;
    const after = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: id });
    expect(after.allPassed).toBe(false);
    const byName = Object.fromEntries(after.evaluations.map((e) => [e.policyName, e]));
    for (const name of ["two-approvals", "one-approval"]) {
      expect(byName[name]).toMatchObject({ policyType: PolicyType.EXTERNAL_APPROVAL, passed: true, reason: expected });
      // The counts stay what they are: the gate is open because of the break-glass, not the votes.
      expect(byName[name]?.externalApprovalState).toMatchObject({ currentApprovals: 1, breakGlass: expected });
    }
    expect(byName["soak-after-staging"]).toMatchObject({ passed: false, reason: expect.stringMatching(/^soak time not met/) });
    expect(byName["release-branches"]).toMatchObject({ passed: false, reason: "branch main does not match required pattern ^release/" });

    // The approval state says so too, for the strictest policy.
    const state = await policies(t.bob).getExternalApprovalState({ project, releaseIntentId: id, targetEnvironment: "prod" });
    expect(state.state).toMatchObject({ requiredApprovals: 2, currentApprovals: 1, breakGlass: expected });
  });

  it("opens only that intent and that environment", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const other = await registerIntent(server, t.pipeline, project);
    await breakGlass(t.ada).breakGlass(request(id));
    const staging = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "staging", releaseIntentId: id });
    expect(staging.evaluations).toMatchObject([{ policyName: "staging-approval", passed: false, reason: "awaiting approval: 0/1" }]);
    const otherProd = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: other });
    expect(otherProd.evaluations.find((e) => e.policyName === "one-approval")).toMatchObject({ passed: false });
    const noIntent = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod" });
    expect(noIntent.evaluations.find((e) => e.policyName === "one-approval")).toMatchObject({ passed: false });
  });

  it("shows in vote responses and vote events after it: the gate has passed", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await breakGlass(t.ada).breakGlass(request(id));
    const vote = await policies(t.carol).externalRejectRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    expect(vote.state?.breakGlass).toMatch(/^break-glass by ada at /);
    // The vote opened the intent's request (requested), and as the gate is open it is approved at once.
    const all = await waitFor(async () => {
      const stored = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
      return stored.length === 4 ? stored : undefined;
    }, 10_000, "the break-glass, the vote and the request's events");
    expect(all.map((m) => m.event.kind)).toEqual([
      "approval.break_glass",
      "approval.requested",
      "approval.decided",
      "approval.approved",
    ]);
    const events = all.filter((m) => m.event.kind !== "approval.requested" && m.event.kind !== "approval.approved");
    expect(events[1]?.event).toMatchObject({ kind: "approval.decided", voter_user_id: "carol", passed: true });
  });

  it("records who, when and why in the history as break_glass", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await policies(t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    clock.set(new Date(START + 7_200_000));
    await breakGlass(t.ada).breakGlass(request(id));
    const listed = await audit(t.alice).listApprovalHistory({ project, releaseIntentId: id });
    // Bob's vote opened the request (request_pending first) and the break-glass approved it (request_approved last).
    expect(listed.entries.map((e) => e.decisionKind)).toEqual(["request_pending", "peer", "break_glass", "request_approved"]);
    expect(listed.entries[3]).toMatchObject({ userId: "ada", decision: "approved", comment: REASON });
    const entries = listed.entries.filter((e) => !e.decisionKind.startsWith("request_"));
    expect(entries).toHaveLength(2);
    expect(entries[1]).toMatchObject({
      releaseIntentId: id,
      targetEnvironment: "prod",
      userId: "ada",
      username: "Ada",
      decision: "approved",
      previousDecision: "",
      decisionKind: "break_glass",
      comment: REASON,
      decidedAt: "2026-01-01T02:00:00.000Z",
      intentAuthorUserId: "alice",
    });
    // A break-glass is not a vote: the current votes are what they were.
    const state = await policies(t.bob).getExternalApprovalState({ project, releaseIntentId: id, targetEnvironment: "prod" });
    expect(state.state?.decisions.map((d) => d.userId)).toEqual(["bob"]);
  });

  it("publishes approval.break_glass to JetStream on the environment's subject, and the intent id to forest.intent.evaluate", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await policies(t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    const { eventId, recordedAt } = await breakGlass(t.ada).breakGlass(request(id));
    const everything = await waitFor(async () => {
      const all = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
      return all.length === 4 ? all : undefined;
    }, 10_000, "the request, the vote, the break-glass and the approval in the stream");
    expect(everything.map((m) => m.event.kind)).toEqual([
      "approval.requested",
      "approval.decided",
      "approval.break_glass",
      "approval.approved",
    ]);
    const stored = everything.filter((m) => m.event.kind === "approval.decided" || m.event.kind === "approval.break_glass");
    const glass = stored[1];
    expect(glass?.subject).toBe(`${names.prefix}.acme.web.prod`);
    expect(glass?.msgId).toBe(eventId);
    expect(glass?.event).toEqual({
      event_id: eventId,
      kind: "approval.break_glass",
      organisation: "acme",
      project: "web",
      environment: "prod",
      release_intent_id: id,
      voter_user_id: "ada",
      voter_username: "Ada",
      decision: "approved",
      decision_kind: "break_glass",
      current_approvals: 1,
      required_approvals: 2,
      passed: true,
      decided_at: recordedAt,
      reason: REASON,
    });
    // One core message per event of the intent.
    await waitFor(() => (evaluateIds.filter((x) => x === id).length === 4 ? true : undefined), 10_000, "core messages");
  });

  it("is delivered by WatchApprovalEvents with its kind, decision kind and reason", async () => {
    const stream = await watch(t.bob);
    try {
      const id = await registerIntent(server, t.pipeline, project);
      const { eventId } = await breakGlass(t.ada).breakGlass(request(id));
      const [event] = await waitFor(
        () => (stream.events.some((e) => e.eventId === eventId) ? stream.events.filter((e) => e.eventId === eventId) : undefined),
        10_000,
        "the break-glass event on the Watch stream",
      );
      expect(event).toMatchObject({
        kind: "approval.break_glass",
        releaseIntentId: id,
        targetEnvironment: "prod",
        voterUserId: "ada",
        decision: "approved",
        decisionKind: "break_glass",
        currentApprovals: 0,
        requiredApprovals: 2,
        passed: true,
        reason: REASON,
      });
    } finally {
      await stream.stop();
    }
  });

  it("counts every break-glass in releasegate_break_glass_total by organisation, project and environment", async () => {
    const before = await breakGlassCount(project, "prod");
    const id = await registerIntent(server, t.pipeline, project);
    await breakGlass(t.ada).breakGlass(request(id));
    await breakGlass(t.ada).breakGlass(request(id, { reason: "incident 42 again: still down" }));
    expect(await breakGlassCount(project, "prod")).toBe(before + 2);
    expect(await breakGlassCount(project, "staging")).toBe(0);
    // The newest one is what evaluation shows.
    const res = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: id });
    expect(res.evaluations.find((e) => e.policyName === "one-approval")?.reason).toMatch(/: incident 42 again: still down$/);
  });
});

describe("break-glass refusals (nothing recorded)", () => {
  /** Refused requests leave no history, no event and no count behind. */
  async function expectNothingRecorded(id: string, countBefore: number): Promise<void> {
    const { entries } = await audit(t.alice).listApprovalHistory({ project, releaseIntentId: id });
    expect(entries).toEqual([]);
    const outbox = await server.app.database.db.selectFrom("outbox").select("event_id").where("release_intent_id", "=", id).execute();
    expect(outbox).toEqual([]);
    expect(await breakGlassCount(project, "prod")).toBe(countBefore);
  }

  it("refuses members, service accounts (even with the admin role) and callers outside the organisation", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const count = await breakGlassCount(project, "prod");
    await expectCode(breakGlass(t.bob).breakGlass(request(id)), Code.PermissionDenied, "member bob may not approval.break_glass in organisation acme");
    await expectCode(
      breakGlass(t.pipeline).breakGlass(request(id)),
      Code.PermissionDenied,
      "service account deploy-bot may not approval.break_glass in organisation acme",
    );
    const adminBot = await token({ sub: "ops-bot", orgs: { acme: "admin" }, service: true });
    await expectCode(breakGlass(adminBot).breakGlass(request(id)), Code.PermissionDenied, /^service account ops-bot may not/);
    await expectCode(breakGlass(t.mallory).breakGlass(request(id)), Code.PermissionDenied, /has no role in organisation acme/);
    await expectNothingRecorded(id, count);
  });

  it("refuses a reason under 10 characters after trimming or over 2000, before authorisation", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const count = await breakGlassCount(project, "prod");
    const short = /^reason: a break-glass needs a reason \(at least 10 characters\)/;
    for (const reason of ["", "urgent", "   123456789   ", "\n\t          \n"])
      await expectCode(breakGlass(t.ada).breakGlass(request(id, { reason })), Code.InvalidArgument, short);
    // A member hears about the reason first: shape before authorisation.
    await expectCode(breakGlass(t.bob).breakGlass(request(id, { reason: "urgent" })), Code.InvalidArgument, short);
    await expectCode(
      breakGlass(t.ada).breakGlass(request(id, { reason: "x".repeat(2001) })),
      Code.InvalidArgument,
      "reason: must be at most 2000 characters (got 2001)",
    );
    await expectNothingRecorded(id, count);
    // The bounds themselves are fine.
    await breakGlass(t.ada).breakGlass(request(id, { reason: "  1234567890  " }));
    await breakGlass(t.ada).breakGlass(request(id, { reason: "y".repeat(2000) }));
  });

  it("refuses malformed fields with INVALID_ARGUMENT naming them", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(breakGlass(t.ada).breakGlass(request("not-a-uuid")), Code.InvalidArgument, /^release_intent_id:/);
    await expectCode(breakGlass(t.ada).breakGlass(request(id, { targetEnvironment: "" })), Code.InvalidArgument, /^target_environment:/);
    await expectCode(breakGlass(t.ada).breakGlass({ ...request(id), project: undefined }), Code.InvalidArgument, /^project/);
  });

  it("folds the environment name like votes, and refuses names that stay invalid", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await breakGlass(t.ada).breakGlass(request(id, { targetEnvironment: "PROD" }));
    const { entries } = await audit(t.alice).listApprovalHistory({ project, releaseIntentId: id });
    expect(entries).toMatchObject([{ targetEnvironment: "prod", decisionKind: "break_glass" }]);
    await expectCode(
      breakGlass(t.ada).breakGlass(request(id, { targetEnvironment: "prod " })),
      Code.InvalidArgument,
      /^target_environment: "prod " is not a valid environment name/,
    );
  });

  it("answers FAILED_PRECONDITION for an environment the project has not declared", async () => {
    const declared = { organisation: "acme", project: "declared" };
    await server.client(EnvironmentService, t.ada).setProjectEnvironments({ project: declared, environments: ["dev", "prod"] });
    await createApprovalPolicy(server, t.ada, declared, "gate", "prod", 1);
    const id = await registerIntent(server, t.pipeline, declared);
    await expectCode(
      breakGlass(t.ada).breakGlass({ ...request(id), project: declared, targetEnvironment: "staging" }),
      Code.FailedPrecondition,
      "target_environment: environment staging is not declared for acme/declared; declared: dev, prod",
    );
    // Checked before the intent: an unknown intent on an undeclared name is FAILED_PRECONDITION too.
    await expectCode(
      breakGlass(t.ada).breakGlass({ ...request(randomUUID()), project: declared, targetEnvironment: "staging" }),
      Code.FailedPrecondition,
    );
    const res = await breakGlass(t.ada).breakGlass({ ...request(id), project: declared });
    expect(res.eventId).not.toBe("");
  });

  it("answers NOT_FOUND for an unknown intent and for an intent of another project", async () => {
    const count = await breakGlassCount(project, "prod");
    const unknown = randomUUID();
    await expectCode(breakGlass(t.ada).breakGlass(request(unknown)), Code.NotFound, new RegExp(unknown));
    const elsewhere = { organisation: "acme", project: "elsewhere" };
    await createApprovalPolicy(server, t.ada, elsewhere, "gate", "prod", 1);
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(breakGlass(t.ada).breakGlass({ ...request(id), project: elsewhere }), Code.NotFound, new RegExp(id));
    await expectNothingRecorded(id, count);
  });

  it("answers FAILED_PRECONDITION when the environment has no enabled approval policy: nothing to break", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(
      breakGlass(t.ada).breakGlass(request(id, { targetEnvironment: "qa" })),
      Code.FailedPrecondition,
      "target_environment: nothing to break: no enabled external approval policy for qa in acme/web",
    );
    // A disabled approval policy is no gate either.
    await createApprovalPolicy(server, t.ada, project, "dormant", "dev", 1);
    await policies(t.ada).updatePolicy({ project, name: "dormant", enabled: false });
    await expectCode(
      breakGlass(t.ada).breakGlass(request(id, { targetEnvironment: "dev" })),
      Code.FailedPrecondition,
      "target_environment: nothing to break: no enabled external approval policy for dev in acme/web",
    );
    const { entries } = await audit(t.alice).listApprovalHistory({ project, releaseIntentId: id });
    expect(entries).toEqual([]);
  });
});
