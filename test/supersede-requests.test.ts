import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalRequestService, ApprovalRequestState } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { type Cast, cast, createApprovalPolicy, waitFor } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { ManualClock, startTestServer, type TestServer } from "./support/server.js";

// A newer release intent supersedes older pending approval requests at
// registration: the request ends `superseded`, its event reaches JetStream,
// Forest's coordinator is told (forest.intent.evaluate with the old id), and
// nothing of the old request's approvals carries over.

const names = uniqueSignalNames();
const clock = new ManualClock(Date.parse("2026-04-01T00:00:00Z"));
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
}, 60_000);
afterAll(async () => {
  await server?.stop();
  evaluate?.unsubscribe();
  await nc?.close();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

/** A project with an approval policy (2 approvals) and a supersede policy on prod. */
async function gatedProject(sameBranchOnly = false) {
  const project = { organisation: "acme", project: `supreq-${randomUUID().slice(0, 8)}` };
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
  await server.client(PolicyService, t.ada).createPolicy({
    project,
    name: "one-pending",
    policyType: PolicyType.SUPERSEDE_PENDING,
    config: { case: "supersedePending", value: { targetEnvironment: "prod", sameBranchOnly, cancelInProgress: false } },
  });
  return project;
}

async function register(project: { organisation: string; project: string }, branch = "main"): Promise<string> {
  clock.advance(1);
  const id = randomUUID();
  await server.client(ReleaseService, t.pipeline).registerReleaseIntent({
    project,
    releaseIntentId: id,
    authorUserId: "alice",
    branch,
    version: "1.0.0",
  });
  return id;
}

const at = (project: { organisation: string; project: string }, id: string) => ({
  project,
  releaseIntentId: id,
  targetEnvironment: "prod",
});

async function requestState(project: { organisation: string; project: string }, id: string) {
  const { request } = await server.client(ApprovalRequestService, t.pipeline).getApprovalRequest(at(project, id));
  return request;
}

describe(`superseding pending requests on ${testDatabaseKind()}`, () => {
  it("ends the older intent's pending request as superseded, with its event on JetStream and forest.intent.evaluate", async () => {
    const project = await gatedProject();
    const old = await register(project);
    await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, old));
    await server.client(PolicyService, t.bob).externalApproveRelease(at(project, old));
    const newer = await register(project);

    const reason = `superseded by ${newer} (policy 'one-pending')`;
    expect(await requestState(project, old)).toMatchObject({
      state: ApprovalRequestState.SUPERSEDED,
      decidedBy: "system",
      decidedAt: clock.now().toISOString(),
      reason,
      supersededBy: newer,
    });

    const stored = await waitFor(
      async () => {
        const mine = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === old);
        return mine.some((m) => m.event.kind === "approval.superseded") ? mine : undefined;
      },
      10_000,
      "the approval.superseded event in the stream",
    );
    const event = stored.find((m) => m.event.kind === "approval.superseded")!;
    expect(event.subject).toBe(`${names.prefix}.acme.${project.project}.prod`);
    expect(event.msgId).toBe(event.event.event_id);
    expect(event.event).toMatchObject({
      kind: "approval.superseded",
      organisation: "acme",
      project: project.project,
      environment: "prod",
      release_intent_id: old,
      voter_user_id: "system",
      reason,
      request_state: "superseded",
      superseded_by: newer,
      passed: false,
    });
    await waitFor(() => (evaluateIds.includes(old) ? true : undefined), 10_000, "forest.intent.evaluate for the old intent");

    // The verdict agrees with the request.
    const res = await server.client(PolicyService, t.pipeline).evaluatePolicies({
      project,
      targetEnvironment: "prod",
      releaseIntentId: old,
    });
    expect(res.evaluations.find((e) => e.policyName === "one-pending")).toMatchObject({ passed: false, reason });
    expect(res.allPassed).toBe(false);

    // History keeps the transition, by the system, with the reason.
    const { entries } = await server
      .client(ApprovalAuditService, t.ada)
      .listApprovalHistory({ project, releaseIntentId: old, targetEnvironment: "prod" });
    expect(entries.map((e) => [e.userId, e.decision, e.comment ?? ""])).toContainEqual(["system", "superseded", reason]);
  });

  it("carries no approval over to the newer intent", async () => {
    const project = await gatedProject();
    const old = await register(project);
    await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, old));
    await server.client(PolicyService, t.bob).externalApproveRelease(at(project, old));
    await server.client(PolicyService, t.carol).externalApproveRelease(at(project, old));
    const newer = await register(project);
    const { state } = await server.client(PolicyService, t.pipeline).getExternalApprovalState(at(project, newer));
    expect(state).toMatchObject({ requiredApprovals: 2, currentApprovals: 0, decisions: [] });
    const res = await server.client(PolicyService, t.pipeline).evaluatePolicies({
      project,
      targetEnvironment: "prod",
      releaseIntentId: newer,
    });
    expect(res.evaluations.map((e) => [e.policyName, e.passed])).toEqual([
      ["one-pending", true],
      ["two-approvals", false],
    ]);
    // The old intent, though fully approved, stays blocked: superseded.
    const oldRes = await server.client(PolicyService, t.pipeline).evaluatePolicies({
      project,
      targetEnvironment: "prod",
      releaseIntentId: old,
    });
    expect(oldRes.evaluations.map((e) => [e.policyName, e.passed])).toEqual([
      ["one-pending", false],
      ["two-approvals", true],
    ]);
  });

  it("leaves the newest intent's request and an older intent deployed to the environment pending", async () => {
    const project = await gatedProject();
    const deployed = await register(project);
    await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, deployed));
    await server.client(ReleaseService, t.pipeline).recordDeployment({
      project,
      environment: "prod",
      releaseIntentId: deployed,
      status: DeploymentStatus.SUCCEEDED,
    });
    const newest = await register(project);
    await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, newest));
    expect((await requestState(project, deployed))?.state).toBe(ApprovalRequestState.PENDING);
    expect((await requestState(project, newest))?.state).toBe(ApprovalRequestState.PENDING);
  });

  it("with same_branch_only supersedes only the same branch's requests, never a request of an intent without a branch", async () => {
    const project = await gatedProject(true);
    const main = await register(project, "main");
    const feature = await register(project, "feature");
    const noBranch = await register(project, "");
    for (const id of [main, feature, noBranch])
      await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, id));
    const main2 = await register(project, "main");
    await register(project, "");
    expect(await requestState(project, main)).toMatchObject({
      state: ApprovalRequestState.SUPERSEDED,
      supersededBy: main2,
      reason: `superseded by ${main2} (policy 'one-pending')`,
    });
    expect((await requestState(project, feature))?.state).toBe(ApprovalRequestState.PENDING);
    expect((await requestState(project, noBranch))?.state).toBe(ApprovalRequestState.PENDING);
  });

  it("supersedes nothing when the same intent is registered again", async () => {
    const project = await gatedProject();
    const old = await register(project);
    const again = await register(project);
    await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, old));
    // Re-registering the newer intent (idempotent) must not supersede the old request a second time round.
    await server.client(ReleaseService, t.pipeline).registerReleaseIntent({
      project,
      releaseIntentId: again,
      authorUserId: "alice",
      branch: "main",
      version: "1.0.0",
    });
    expect((await requestState(project, old))?.state).toBe(ApprovalRequestState.PENDING);
  });

  it("a vote racing the superseding registration either lands first or is refused; never an internal error", async () => {
    const project = await gatedProject();
    for (let round = 0; round < 8; round++) {
      const old = await register(project);
      await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, old));
      clock.advance(1);
      const newer = randomUUID();
      const [vote, registration] = await Promise.allSettled([
        server.client(PolicyService, t.bob).externalApproveRelease(at(project, old)),
        server.client(ReleaseService, t.pipeline).registerReleaseIntent({
          project,
          releaseIntentId: newer,
          authorUserId: "alice",
          branch: "main",
        }),
      ]);
      expect(registration.status, `round ${round}: registration`).toBe("fulfilled");
      if (vote.status === "rejected")
        expect(ConnectError.from(vote.reason).code, `round ${round}: vote`).toBe(Code.FailedPrecondition);
      expect(await requestState(project, old), `round ${round}`).toMatchObject({
        state: ApprovalRequestState.SUPERSEDED,
        supersededBy: newer,
      });
      // A vote after the supersession is refused, saying what happened.
      await expect(server.client(PolicyService, t.carol).externalApproveRelease(at(project, old))).rejects.toMatchObject({
        code: Code.FailedPrecondition,
      });
    }
  });

  it("counts supersessions in the metrics", async () => {
    const project = await gatedProject();
    const old = await register(project);
    await server.client(ApprovalRequestService, t.pipeline).requestApproval(at(project, old));
    await register(project);
    const line = (await server.app.metrics.registry.metrics())
      .split("\n")
      .find((l) => l.startsWith("releasegate_supersessions_total{") && l.includes(`project="${project.project}"`));
    expect(line).toBe(`releasegate_supersessions_total{organisation="acme",project="${project.project}",environment="prod"} 1`);
  });
});
