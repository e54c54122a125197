import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { approvalSubject, subjectToken } from "../src/signal/subject.js";
import { type Cast, cast, createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { ManualClock, startTestServer, type TestServer } from "./support/server.js";

// Names with dots: the subject tokens must escape them.
const project = { organisation: "acme", project: "web.app" };
const environment = "prod.eu";
const names = uniqueSignalNames();
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
    env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "two-approvals", environment, 2);
});
afterAll(async () => {
  await server?.stop();
  evaluate?.unsubscribe();
  await nc?.close();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

describe("subject tokens", () => {
  it("escapes dots, spaces, wildcards and the escape character deterministically", () => {
    expect(subjectToken("web.app")).toBe("web%2Eapp");
    expect(subjectToken("prod eu")).toBe("prod%20eu");
    expect(subjectToken("a*b>c")).toBe("a%2Ab%3Ec");
    expect(subjectToken("100%")).toBe("100%25");
    expect(subjectToken("ok_name-1")).toBe("ok_name-1");
    expect(subjectToken("é")).toBe("%C3%A9");
    expect(approvalSubject("releasegate.approvals", "acme", "web.app", "prod eu")).toBe(
      "releasegate.approvals.acme.web%2Eapp.prod%20eu",
    );
  });
});

describe("publishing approval decisions", () => {
  it("creates the stream at start when it is missing", async () => {
    const jsm = await jetstreamManager(nc);
    const info = await waitFor(() => jsm.streams.info(names.stream).catch(() => undefined), 10_000, "stream");
    expect(info.config.subjects).toEqual([`${names.prefix}.>`]);
    // One hour, in nanoseconds: a publish retried after a long outage is still deduplicated.
    expect(info.config.duplicate_window).toBe(3_600_000_000_000);
  });

  it("publishes each vote to JetStream with Nats-Msg-Id = event id, and the bare intent id to forest.intent.evaluate", async () => {
    const id = await registerIntent(server, t.ada, project);
    const vote = { project, releaseIntentId: id, targetEnvironment: environment };
    await server.client(PolicyService, t.bob).externalApproveRelease(vote);
    await server.client(PolicyService, t.carol).externalApproveRelease(vote);

    // Two votes, and the approval request's life: opened by bob's first vote, approved by carol's.
    const all = await waitFor(async () => {
      const all = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
      return all.length === 4 ? all : undefined;
    }, 10_000, "four events in the stream (two votes, request opened and approved)");
    expect(all.map((m) => m.event.kind)).toEqual(["approval.requested", "approval.decided", "approval.decided", "approval.approved"]);
    const subject = `${names.prefix}.acme.web%2Eapp.prod%2Eeu`;
    expect(all.map((m) => m.subject)).toEqual([subject, subject, subject, subject]);
    for (const m of all) expect(m.msgId).toBe(m.event.event_id);
    expect(new Set(all.map((m) => m.msgId)).size).toBe(4);
    expect(all[0]?.event).toMatchObject({ voter_user_id: "bob", decision: "pending", decision_kind: "request_pending" });
    expect(all[3]?.event).toMatchObject({ decision: "approved", decision_kind: "request_approved", passed: true });
    expect(all[3]?.event.request_id).toBe(all[0]?.event.request_id);
    const stored = all.filter((m) => m.event.kind === "approval.decided");
    expect(stored[0]?.event).toMatchObject({
      kind: "approval.decided",
      organisation: "acme",
      project: "web.app",
      environment: "prod.eu",
      release_intent_id: id,
      voter_user_id: "bob",
      voter_username: "Bob",
      decision: "approved",
      decision_kind: "peer",
      current_approvals: 1,
      required_approvals: 2,
      passed: false,
    });
    expect(stored[1]?.event).toMatchObject({ voter_user_id: "carol", current_approvals: 2, passed: true });
    expect(Number.isNaN(Date.parse(String(stored[1]?.event.decided_at)))).toBe(false);

    // One core message per event (the votes and the request's transitions).
    await waitFor(() => (evaluateIds.filter((x) => x === id).length === 4 ? true : undefined), 10_000, "core messages");
    // Published before the relay commits its "published" mark: wait for the commit.
    await waitFor(async () => ((await server.app.relay.outboxDepth()) === 0 ? true : undefined), 5_000, "outbox marked");
  });

  it("records the admin override as the event's decision kind", async () => {
    const id = await registerIntent(server, t.ada, project, "ada");
    await server
      .client(PolicyService, t.ada)
      .externalApproveRelease({
        project,
        releaseIntentId: id,
        targetEnvironment: environment,
        forceBypass: true,
        comment: "incident 42: hotfix",
      });
    // The override counts as one approval of two (four eyes bypassed, not the gate): the request it opened stays pending.
    const all = await waitFor(async () => {
      const all = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
      return all.length === 2 ? all : undefined;
    }, 10_000, "the override event and the request it opened");
    expect(all.map((m) => m.event.kind)).toEqual(["approval.requested", "approval.decided"]);
    const [event] = all.filter((m) => m.event.kind === "approval.decided");
    expect(event?.event).toMatchObject({ voter_user_id: "ada", decision_kind: "admin_override", decision: "approved" });
  });

  it("re-creates a stream deleted under it and still delivers the event", async () => {
    await deleteStream(SHARED_NATS_URL, names.stream);
    const id = await registerIntent(server, t.ada, project);
    await server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: environment });
    await waitFor(async () => {
      const all = await readStream(nc, names.stream);
      return all.filter((m) => m.event.release_intent_id === id).length >= 2 ? all : undefined;
    }, 15_000, "the events in the re-created stream");
    // Published before the relay commits its "published" mark: wait for the commit; then read again.
    await waitFor(async () => ((await server.app.relay.outboxDepth()) === 0 ? true : undefined), 5_000, "outbox marked");
    const stored = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
    // bob's vote and the request it opened, each once.
    expect(stored.map((m) => m.event.kind)).toEqual(["approval.requested", "approval.decided"]);
  });
});

describe("outbox retention", () => {
  it("deletes published events a week old, keeps newer ones and never unpublished ones", async () => {
    const clock = new ManualClock(Date.now());
    const local = uniqueSignalNames();
    const replica = await startTestServer({
      clock,
      env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: local.stream, NATS_SUBJECT_PREFIX: local.prefix },
    });
    try {
      // Three approvals for two voters: the request stays pending, so carol's later vote is taken.
      await createApprovalPolicy(replica, t.ada, project, "gate", environment, 3);
      const id = await registerIntent(replica, t.ada, project);
      const vote = { project, releaseIntentId: id, targetEnvironment: environment };
      const db = replica.app.database.db;
      const rows = () =>
        db
          .selectFrom("outbox")
          .select(["event_id", "published_at", sql<string>`payload->>'kind'`.as("kind")])
          .orderBy("seq")
          .execute();
      await replica.client(PolicyService, t.bob).externalApproveRelease(vote);
      const old = await waitFor(async () => {
        const r = await rows();
        return r.length === 2 && r.every((x) => x.published_at !== null) ? r : undefined;
      }, 10_000, "first events published (request opened, bob's vote)");
      expect(old.map((r) => r.kind)).toEqual(["approval.requested", "approval.decided"]);

      // Eight days later (and past the hourly prune interval) another vote wakes the relay.
      clock.advance(8 * 24 * 3600);
      await replica.client(PolicyService, t.carol).externalApproveRelease(vote);
      const remaining = await waitFor(async () => {
        const r = await rows();
        return r.length === 1 && !old.some((o) => o.event_id === r[0]?.event_id) && r[0]?.published_at !== null ? r : undefined;
      }, 10_000, "old events deleted, new one published");
      expect(remaining.map((r) => r.kind)).toEqual(["approval.decided"]);
      // The audit history is untouched.
      const history = await db.selectFrom("approval_history").select("user_id").where("release_intent_id", "=", id).execute();
      expect(history.map((h) => h.user_id)).toEqual(["bob", "bob", "carol"]);
    } finally {
      await replica.stop();
      await deleteStream(SHARED_NATS_URL, local.stream);
    }
  });
});
