import { Code } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalRequestService, ApprovalRequestState } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { type Cast, cast, expectCode, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "lifecycle" };
const START = Date.parse("2026-04-01T00:00:00Z");
const TIMEOUT_S = 3600;
const clock = new ManualClock(START);
let server: TestServer;
let t: Cast;
let dave: string;

beforeAll(async () => {
  server = await startTestServer({ clock, env: { RELEASEGATE_REAPER_INTERVAL_MS: "25" } });
  t = await cast();
  dave = await token({ sub: "dave", name: "Dave", orgs: { acme: "member" } });
  await server.client(PolicyService, t.ada).createPolicy({
    project,
    name: "timed",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: {
      case: "externalApproval",
      value: { targetEnvironment: "prod", requiredApprovals: 1, requestTimeoutSeconds: BigInt(TIMEOUT_S) },
    },
  });
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const requests = (tok: string) => server.client(ApprovalRequestService, tok);
const at = (id: string) => ({ project, releaseIntentId: id, targetEnvironment: "prod" });
const db = () => server.db.database.db;

async function storedState(requestId: string): Promise<string | undefined> {
  const { rows } = await sql<{ state: string }>`select state from approval_requests where id = ${requestId}::uuid`.execute(db());
  return rows[0]?.state;
}

async function outboxKinds(releaseIntentId: string): Promise<string[]> {
  const { rows } = await sql<{ kind: string }>`
    select payload->>'kind' as kind from outbox where release_intent_id = ${releaseIntentId}::uuid order by seq`.execute(db());
  return rows.map((r) => r.kind);
}

/** Registers an intent authored by alice through the pipeline and opens its request. */
async function opened(): Promise<{ id: string; requestId: string }> {
  const id = await registerIntent(server, t.pipeline, project, "alice");
  const res = await requests(t.pipeline).requestApproval(at(id));
  return { id, requestId: res.request!.id };
}

describe(`approval request lifecycle on ${testDatabaseKind()}`, () => {
  for (const [who, tok] of [
    ["the author", () => t.alice],
    ["the registrant (the pipeline)", () => t.pipeline],
    ["an organisation admin", () => t.ada],
  ] as const)
    it(`${who} cancels the pending request, with history and event`, async () => {
      const { id, requestId } = await opened();
      clock.advance(10);
      const res = await requests(tok()).cancelApprovalRequest({ ...at(id), reason: "wrong build" });
      const by = who === "the author" ? "alice" : who === "an organisation admin" ? "ada" : "deploy-bot";
      expect(res.request).toMatchObject({
        id: requestId,
        state: ApprovalRequestState.CANCELLED,
        decidedBy: by,
        decidedAt: clock.now().toISOString(),
        reason: "wrong build",
      });
      expect(await storedState(requestId)).toBe("cancelled");
      expect(await outboxKinds(id)).toEqual(["approval.requested", "approval.cancelled"]);
      const history = await server.client(ApprovalAuditService, t.ada).listApprovalHistory({ project, releaseIntentId: id });
      expect(history.entries.map((e) => [e.userId, e.decision, e.decisionKind, e.previousDecision])).toEqual([
        ["deploy-bot", "pending", "request_pending", ""],
        [by, "cancelled", "request_cancelled", "pending"],
      ]);
    });

  it("refuses anyone else with PERMISSION_DENIED naming who may, and leaves the request pending", async () => {
    const { id, requestId } = await opened();
    await expectCode(
      requests(dave).cancelApprovalRequest(at(id)),
      Code.PermissionDenied,
      `dave may not cancel the approval request of release intent ${id}: only its author (alice), its registrant (deploy-bot) or an organisation admin may`,
    );
    await expectCode(requests(t.mallory).cancelApprovalRequest(at(id)), Code.PermissionDenied, /no role in organisation acme/);
    expect(await storedState(requestId)).toBe("pending");
  });

  it("FAILED_PRECONDITION when nothing is pending: none opened, or the newest is final", async () => {
    const id = await registerIntent(server, t.pipeline, project, "alice");
    await expectCode(
      requests(t.alice).cancelApprovalRequest(at(id)),
      Code.FailedPrecondition,
      `target_environment: nothing to cancel for release intent ${id} in prod: no approval request was ever opened`,
    );
    const opened = await requests(t.pipeline).requestApproval(at(id));
    await requests(t.alice).cancelApprovalRequest({ ...at(id), reason: "first" });
    const err = await expectCode(requests(t.ada).cancelApprovalRequest(at(id)), Code.FailedPrecondition);
    expect(err.rawMessage).toBe(
      `target_environment: nothing to cancel for release intent ${id} in prod: approval request ${opened.request?.id} was cancelled by alice at ${clock.now().toISOString()}: first`,
    );
  });

  it("a reason longer than 2000 characters is INVALID_ARGUMENT", async () => {
    const { id } = await opened();
    await expectCode(
      requests(t.alice).cancelApprovalRequest({ ...at(id), reason: "x".repeat(2001) }),
      Code.InvalidArgument,
      "reason: must be at most 2000 characters (got 2001)",
    );
  });

  it("a new request after a final one is a new request; the old one stays as it ended", async () => {
    const { id, requestId } = await opened();
    await requests(t.alice).cancelApprovalRequest(at(id));
    clock.advance(5);
    const again = await requests(t.pipeline).requestApproval(at(id));
    expect(again.created).toBe(true);
    expect(again.request?.id).not.toBe(requestId);
    const got = await requests(t.carol).getApprovalRequest(at(id));
    expect(got.request).toMatchObject({ id: again.request?.id, state: ApprovalRequestState.PENDING });
    expect(got.earlier.map((r) => [r.id, r.state])).toEqual([[requestId, ApprovalRequestState.CANCELLED]]);
  });

  it("the reaper expires a request once its timeout passed, with history, event and metrics", async () => {
    const { id, requestId } = await opened();
    const expiresAt = new Date(clock.now().getTime() + TIMEOUT_S * 1000).toISOString();
    clock.advance(TIMEOUT_S - 1);
    // Not due yet: several reaper intervals go by and it stays pending.
    await new Promise((r) => setTimeout(r, 150));
    expect(await storedState(requestId)).toBe("pending");
    clock.advance(1);
    await waitFor(async () => ((await storedState(requestId)) === "expired" ? true : undefined), 10_000, "the reaper");
    const got = await requests(t.carol).getApprovalRequest(at(id));
    expect(got.request).toMatchObject({
      state: ApprovalRequestState.EXPIRED,
      decidedBy: "system",
      decidedAt: expiresAt,
      reason: `request timeout: no decision by ${expiresAt}`,
    });
    expect(await outboxKinds(id)).toEqual(["approval.requested", "approval.expired"]);
    const { rows } = await sql<{ payload: Record<string, unknown> }>`
      select payload from outbox where release_intent_id = ${id}::uuid and payload->>'kind' = 'approval.expired'`.execute(db());
    expect(rows[0]?.payload).toMatchObject({
      voter_user_id: "system",
      decision: "expired",
      decision_kind: "request_expired",
      request_id: requestId,
      request_state: "expired",
      decided_at: expiresAt,
    });
    const metrics = await (await fetch(`http://127.0.0.1:${server.app.adminPort}/metrics`)).text();
    expect(metrics).toMatch(
      /releasegate_approval_requests_expired_total\{organisation="acme",project="lifecycle",environment="prod"\} [1-9]/,
    );
  });

  it("a due request reads as expired before the reaper writes it, and cannot be cancelled", async () => {
    // A server of its own whose reaper is far too slow to have run: what it answers is the rule, not the reaper.
    const own = new ManualClock(START);
    const slow = await startTestServer({ clock: own, env: { RELEASEGATE_REAPER_INTERVAL_MS: "3600000" } });
    try {
      await slow.client(PolicyService, t.ada).createPolicy({
        project,
        name: "timed",
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1, requestTimeoutSeconds: 60n } },
      });
      const client = (tok: string) => slow.client(ApprovalRequestService, tok);
      const id = await registerIntent(slow, t.pipeline, project, "alice");
      const opened = await client(t.pipeline).requestApproval(at(id));
      own.advance(60);
      const stored = async (rid: string) =>
        (await sql<{ state: string }>`select state from approval_requests where id = ${rid}::uuid`.execute(slow.db.database.db))
          .rows[0]?.state;
      expect(await stored(opened.request!.id)).toBe("pending");
      const got = await client(t.carol).getApprovalRequest(at(id));
      expect(got.request).toMatchObject({ id: opened.request?.id, state: ApprovalRequestState.EXPIRED, decidedBy: "system" });
      await expectCode(
        client(t.alice).cancelApprovalRequest(at(id)),
        Code.FailedPrecondition,
        /was expired by system at 2026-04-01T00:01:00.000Z: request timeout: no decision by 2026-04-01T00:01:00.000Z$/,
      );
      // RequestApproval expires it there (history and event) and opens a fresh one.
      const fresh = await client(t.pipeline).requestApproval(at(id));
      expect(fresh.created).toBe(true);
      expect(fresh.request?.id).not.toBe(opened.request?.id);
      expect(await stored(opened.request!.id)).toBe("expired");
    } finally {
      await slow.stop();
    }
  });
});

describe(`the metrics of pending requests on ${testDatabaseKind()}`, () => {
  it("counts pending requests per environment, exactly", async () => {
    const other = await startTestServer({ clock });
    try {
      const p = { organisation: "acme", project: "counted" };
      await other.client(PolicyService, t.ada).createPolicy({
        project: p,
        name: "gate",
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
      });
      const ids = await Promise.all([1, 2, 3].map(() => registerIntent(other, t.pipeline, p)));
      for (const id of ids)
        await other
          .client(ApprovalRequestService, t.pipeline)
          .requestApproval({ project: p, releaseIntentId: id, targetEnvironment: "prod" });
      await other
        .client(ApprovalRequestService, t.pipeline)
        .cancelApprovalRequest({ project: p, releaseIntentId: ids[0]!, targetEnvironment: "prod" });
      const metrics = await (await fetch(`http://127.0.0.1:${other.app.adminPort}/metrics`)).text();
      expect(metrics).toContain('releasegate_approval_requests_pending{organisation="acme",project="counted",environment="prod"} 2');
      expect(metrics).toMatch(
        /releasegate_approval_requests_pending_oldest_age_seconds\{organisation="acme",project="counted",environment="prod"\} \d/,
      );
    } finally {
      await other.stop();
    }
  });
});
