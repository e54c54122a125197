import { Code } from "@connectrpc/connect";
import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalRequestService, ApprovalRequestState } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { type Cast, cast, createApprovalPolicy, expectCode, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "requests" };
const START = Date.parse("2026-03-01T00:00:00Z");
const names = uniqueSignalNames();
const clock = new ManualClock(START);
let server: TestServer;
let nc: NatsConnection;
let t: Cast;
let viewer: string;

beforeAll(async () => {
  nc = await connectSharedNats();
  server = await startTestServer({
    clock,
    env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
  t = await cast();
  viewer = await token({ sub: "vic", orgs: { acme: "viewer" } });
  // prod: two approval policies; the longer request timeout (2 h) decides the expiry.
  await server.client(PolicyService, t.ada).createPolicy({
    project,
    name: "one-hour",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1, requestTimeoutSeconds: 3600n } },
  });
  await server.client(PolicyService, t.ada).createPolicy({
    project,
    name: "two-hours",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 2, requestTimeoutSeconds: 7200n } },
  });
  // staging: an approval policy without a timeout (never expires).
  await createApprovalPolicy(server, t.ada, project, "staging-approval", "staging", 1);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await nc?.close();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

const requests = (tok: string) => server.client(ApprovalRequestService, tok);
const at = (id: string, targetEnvironment = "prod") => ({ project, releaseIntentId: id, targetEnvironment });

describe(`opening approval requests on ${testDatabaseKind()}`, () => {
  it("RequestApproval opens a pending request that expires after the longest request timeout", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const res = await requests(t.pipeline).requestApproval(at(id));
    expect(res.created).toBe(true);
    expect(res.request).toMatchObject({
      releaseIntentId: id,
      targetEnvironment: "prod",
      state: ApprovalRequestState.PENDING,
      requestedBy: "deploy-bot",
      requestedByActorType: "service",
      openedBy: "request",
      requestedAt: new Date(START).toISOString(),
      expiresAt: new Date(START + 7_200_000).toISOString(),
      decidedAt: "",
      decidedBy: "",
      authorUserId: "alice",
      branch: "main",
      version: "1.0.0",
      currentApprovals: 0,
      requiredApprovals: 2,
    });
    expect(res.request?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("RequestApproval is idempotent: the pending request comes back with created false", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const first = await requests(t.pipeline).requestApproval(at(id));
    clock.advance(60);
    const again = await requests(t.alice).requestApproval(at(id));
    expect(again.created).toBe(false);
    expect(again.request?.id).toBe(first.request?.id);
    // Still the first caller's request, opened at its time.
    expect(again.request).toMatchObject({ requestedBy: "deploy-bot", requestedAt: first.request?.requestedAt });
  });

  it("concurrent RequestApproval calls agree on one request, and exactly one creates it", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const all = await Promise.all(
      Array.from({ length: 8 }, (_, i) => requests(i % 2 === 0 ? t.pipeline : t.bob).requestApproval(at(id))),
    );
    expect(new Set(all.map((r) => r.request?.id)).size).toBe(1);
    expect(all.filter((r) => r.created)).toHaveLength(1);
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from approval_requests where release_intent_id = ${id}::uuid`.execute(server.db.database.db);
    expect(rows[0]?.n).toBe(1);
  });

  it("a request on an environment whose policies set no timeout never expires", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const res = await requests(t.bob).requestApproval(at(id, "staging"));
    expect(res.request).toMatchObject({ expiresAt: "", requestedBy: "bob", requestedByActorType: "user", requiredApprovals: 1 });
  });

  it("GetApprovalRequest shows no request before one is opened, then the pending one", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const none = await requests(viewer).getApprovalRequest(at(id));
    expect(none.request).toBeUndefined();
    expect(none.earlier).toEqual([]);
    const opened = await requests(t.pipeline).requestApproval(at(id));
    const got = await requests(viewer).getApprovalRequest(at(id));
    expect(got.request).toMatchObject({ id: opened.request?.id, state: ApprovalRequestState.PENDING });
    expect(got.earlier).toEqual([]);
  });

  it("opening writes the history row and an approval.requested event that reaches JetStream", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const opened = await requests(t.pipeline).requestApproval(at(id));
    const history = await server.client(ApprovalAuditService, t.ada).listApprovalHistory({ project, releaseIntentId: id });
    expect(history.entries).toHaveLength(1);
    expect(history.entries[0]).toMatchObject({
      userId: "deploy-bot",
      decision: "pending",
      decisionKind: "request_pending",
      previousDecision: "",
      decidedAt: new Date(clock.now()).toISOString(),
    });
    const event = await waitFor(
      async () => (await readStream(nc, names.stream)).find((m) => m.event.request_id === opened.request?.id),
      10_000,
      "approval.requested on JetStream",
    );
    expect(event.subject).toBe(`${names.prefix}.acme.requests.prod`);
    expect(event.event).toMatchObject({
      kind: "approval.requested",
      release_intent_id: id,
      environment: "prod",
      voter_user_id: "deploy-bot",
      decision: "pending",
      decision_kind: "request_pending",
      request_state: "pending",
      passed: false,
    });
    expect(event.msgId).toBe(event.event.event_id);
  });

  it("refuses a malformed intent id with INVALID_ARGUMENT naming the field", async () => {
    await expectCode(requests(t.pipeline).requestApproval(at("not-a-uuid")), Code.InvalidArgument, /^release_intent_id: /);
    await expectCode(requests(t.pipeline).getApprovalRequest(at("not-a-uuid")), Code.InvalidArgument, /^release_intent_id: /);
  });

  it("refuses callers who may not register intents with PERMISSION_DENIED, before looking anything up", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(requests(viewer).requestApproval(at(id)), Code.PermissionDenied, /viewer vic may not intent.register/);
    await expectCode(requests(t.mallory).requestApproval(at(id)), Code.PermissionDenied, /no role in organisation acme/);
    await expectCode(requests(t.mallory).getApprovalRequest(at(id)), Code.PermissionDenied, /no role in organisation acme/);
    // Nothing was opened by the refused calls.
    expect((await requests(viewer).getApprovalRequest(at(id))).request).toBeUndefined();
  });

  it("NOT_FOUND for an intent that is not in the project", async () => {
    const other = await registerIntent(server, t.pipeline, { organisation: "acme", project: "elsewhere" });
    await expectCode(requests(t.pipeline).requestApproval(at(other)), Code.NotFound, /release intent .* not found in acme\/requests/);
    await expectCode(requests(viewer).getApprovalRequest(at(other)), Code.NotFound, /not found in acme\/requests/);
  });

  it("FAILED_PRECONDITION when no enabled approval policy gates the environment", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    await expectCode(
      requests(t.pipeline).requestApproval(at(id, "dev")),
      Code.FailedPrecondition,
      /^target_environment: nothing to request: no enabled external approval policy for dev in acme\/requests/,
    );
  });

  it("the policy options are stored and listed, and out-of-range values are INVALID_ARGUMENT", async () => {
    const list = await server.client(PolicyService, t.ada).listPolicies({ project });
    const oneHour = list.policies.find((p) => p.name === "one-hour");
    expect(oneHour?.config).toMatchObject({
      case: "externalApproval",
      value: { requestTimeoutSeconds: 3600n, maxApprovalAgeSeconds: 0n, rejectBlocks: false },
    });
    await expectCode(
      server.client(PolicyService, t.ada).createPolicy({
        project,
        name: "negative",
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1, requestTimeoutSeconds: -1n } },
      }),
      Code.InvalidArgument,
      /^external_approval\.request_timeout_seconds: must be whole seconds between 0 \(off\) and/,
    );
  });

  it("ListPendingApprovals and CountPendingApprovals say they are not implemented yet", async () => {
    await expectCode(requests(t.bob).countPendingApprovals({ organisation: "acme" }), Code.Unimplemented, /CountPendingApprovals/);
  });
});
