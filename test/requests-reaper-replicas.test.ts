import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalRequestService } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { registerIntent, waitFor } from "./support/approval-fixtures.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "reaped" };
const REQUESTS = 120;
const names = uniqueSignalNames();
const clock = new ManualClock(Date.parse("2026-05-01T00:00:00Z"));
let database: TestDatabase;
let a: TestServer;
let b: TestServer;
let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectSharedNats();
  // Replicas only make sense on a shared Postgres database; both reapers tick every 10 ms on one clock.
  database = await createTestDatabase("postgres");
  const env = {
    NATS_URL: SHARED_NATS_URL,
    NATS_STREAM: names.stream,
    NATS_SUBJECT_PREFIX: names.prefix,
    RELEASEGATE_REAPER_INTERVAL_MS: "10",
  };
  a = await startTestServer({ shared: database, env, clock });
  b = await startTestServer({ shared: database, env, clock });
}, 60_000);
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await database?.dispose();
  await nc?.close();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

describe("the reaper on two servers over one Postgres database", () => {
  it("expires each due request exactly once: one state change, one history row, one event each", async () => {
    const admin = await token({ sub: "ada", orgs: { acme: "admin" } });
    const pipeline = await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true });
    await a.client(PolicyService, admin).createPolicy({
      project,
      name: "timed",
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1, requestTimeoutSeconds: 600n } },
    });
    const ids: string[] = [];
    for (let i = 0; i < REQUESTS; i++) ids.push(await registerIntent(i % 2 === 0 ? a : b, pipeline, project));
    await Promise.all(
      ids.map((id, i) =>
        (i % 2 === 0 ? b : a)
          .client(ApprovalRequestService, pipeline)
          .requestApproval({ project, releaseIntentId: id, targetEnvironment: "prod" }),
      ),
    );
    // Every request falls due at once: both reapers race for them.
    clock.advance(600);
    const db = database.database.db;
    await waitFor(
      async () => {
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from approval_requests where organisation = 'acme' and project = 'reaped' and state = 'expired'`.execute(db);
        return rows[0]?.n === REQUESTS ? true : undefined;
      },
      30_000,
      "every request expired",
    );
    const history = await sql<{ release_intent_id: string; n: number }>`
      select release_intent_id::text, count(*)::int as n from approval_history
       where project = 'reaped' and decision_kind = 'request_expired' group by release_intent_id`.execute(db);
    expect(history.rows).toHaveLength(REQUESTS);
    expect(history.rows.every((r) => r.n === 1)).toBe(true);
    const outbox = await sql<{ request_id: string; n: number }>`
      select payload->>'request_id' as request_id, count(*)::int as n from outbox
       where payload->>'project' = 'reaped' and payload->>'kind' = 'approval.expired' group by 1`.execute(db);
    expect(outbox.rows).toHaveLength(REQUESTS);
    expect(outbox.rows.every((r) => r.n === 1)).toBe(true);
    // And on JetStream: one approval.expired message per request.
    const expired = await waitFor(
      async () => {
        const all = (await readStream(nc, names.stream)).filter((m) => m.event.kind === "approval.expired");
        return all.length >= REQUESTS ? all : undefined;
      },
      30_000,
      "every approval.expired on JetStream",
    );
    expect(expired).toHaveLength(REQUESTS);
    expect(new Set(expired.map((m) => m.event.request_id)).size).toBe(REQUESTS);
    // Both replicas did part of the work (the counter is per replica).
    const scrape = async (s: TestServer) => {
      const text = await (await fetch(`http://127.0.0.1:${s.app.adminPort}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith("releasegate_approval_requests_expired_total{") && l.includes('project="reaped"'));
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    expect((await scrape(a)) + (await scrape(b))).toBe(REQUESTS);
  });
});
