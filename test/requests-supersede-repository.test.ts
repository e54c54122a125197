import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { supersedePendingRequests } from "../src/db/approval-request.repository.js";
import { ApprovalRequestService } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { type Cast, cast, createApprovalPolicy, registerIntent } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { ManualClock, startTestServer, type TestServer } from "./support/server.js";

const project = { organisation: "acme", project: "superseding" };
const clock = new ManualClock(Date.parse("2026-07-01T00:00:00Z"));
let server: TestServer;
let t: Cast;

beforeAll(async () => {
  server = await startTestServer({ clock });
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "gate", "prod", 1);
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

describe(`supersedePendingRequests over ${testDatabaseKind()}`, () => {
  it("supersedes exactly the named intents' pending requests, with history and events, once", async () => {
    const open = async () => {
      const id = await registerIntent(server, t.pipeline, project);
      const res = await server
        .client(ApprovalRequestService, t.pipeline)
        .requestApproval({ project, releaseIntentId: id, targetEnvironment: "prod" });
      return { id, requestId: res.request!.id };
    };
    const older = await open();
    const cancelledOne = await open();
    await server
      .client(ApprovalRequestService, t.pipeline)
      .cancelApprovalRequest({ project, releaseIntentId: cancelledOne.id, targetEnvironment: "prod" });
    const untouched = await open();
    const newer = await registerIntent(server, t.pipeline, project);
    const db = server.db.database.db;
    const command = {
      organisation: project.organisation,
      project: project.project,
      environment: "prod",
      releaseIntentIds: [older.id, cancelledOne.id],
      supersededBy: newer,
      decidedAt: clock.now(),
      reason: `superseded by ${newer} (policy 'one-pending')`,
      subjectPrefix: "test",
    };
    const done = await db.transaction().execute((trx) => supersedePendingRequests(trx, command));
    // The cancelled one is final: only the pending one is superseded.
    expect(done.map((r) => [r.id, r.state, r.supersededBy, r.decidedBy])).toEqual([
      [older.requestId, "superseded", newer, "system"],
    ]);
    const again = await db.transaction().execute((trx) => supersedePendingRequests(trx, command));
    expect(again).toEqual([]);
    const { rows } = await sql<{ id: string; state: string }>`
      select id::text, state from approval_requests where project = 'superseding' order by requested_at`.execute(db);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.state]))).toEqual({
      [older.requestId]: "superseded",
      [cancelledOne.requestId]: "cancelled",
      [untouched.requestId]: "pending",
    });
    const events = await sql<{ payload: Record<string, unknown> }>`
      select payload from outbox where payload->>'kind' = 'approval.superseded' and payload->>'project' = 'superseding'`.execute(db);
    expect(events.rows.map((r) => r.payload)).toEqual([
      expect.objectContaining({
        request_id: older.requestId,
        superseded_by: newer,
        decision_kind: "request_superseded",
        voter_user_id: "system",
        reason: command.reason,
      }),
    ]);
    const history = await sql<{ n: number }>`
      select count(*)::int as n from approval_history where release_intent_id = ${older.id}::uuid and decision_kind = 'request_superseded'`.execute(db);
    expect(history.rows[0]?.n).toBe(1);
  });
});
