import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
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

    const stored = await waitFor(async () => {
      const all = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
      return all.length === 2 ? all : undefined;
    }, 10_000, "two events in the stream");
    const subject = `${names.prefix}.acme.web%2Eapp.prod%2Eeu`;
    expect(stored.map((m) => m.subject)).toEqual([subject, subject]);
    for (const m of stored) expect(m.msgId).toBe(m.event.event_id);
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

    await waitFor(() => (evaluateIds.filter((x) => x === id).length === 2 ? true : undefined), 10_000, "core messages");
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
    const [event] = await waitFor(async () => {
      const all = (await readStream(nc, names.stream)).filter((m) => m.event.release_intent_id === id);
      return all.length === 1 ? all : undefined;
    }, 10_000, "the override event");
    expect(event?.event).toMatchObject({ voter_user_id: "ada", decision_kind: "admin_override", decision: "approved" });
  });

  it("re-creates a stream deleted under it and still delivers the event", async () => {
    await deleteStream(SHARED_NATS_URL, names.stream);
    const id = await registerIntent(server, t.ada, project);
    await server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: environment });
    const stored = await waitFor(async () => {
      const all = await readStream(nc, names.stream);
      return all.some((m) => m.event.release_intent_id === id) ? all : undefined;
    }, 15_000, "the event in the re-created stream");
    expect(stored.filter((m) => m.event.release_intent_id === id)).toHaveLength(1);
    // Published before the relay commits its "published" mark: wait for the commit.
    await waitFor(async () => ((await server.app.relay.outboxDepth()) === 0 ? true : undefined), 5_000, "outbox marked");
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
      await createApprovalPolicy(replica, t.ada, project, "gate", environment, 1);
      const id = await registerIntent(replica, t.ada, project);
      const vote = { project, releaseIntentId: id, targetEnvironment: environment };
      const db = replica.app.database.db;
      const rows = () => db.selectFrom("outbox").select(["event_id", "published_at"]).orderBy("seq").execute();
      await replica.client(PolicyService, t.bob).externalApproveRelease(vote);
      const [old] = await waitFor(async () => {
        const r = await rows();
        return r.length === 1 && r[0]?.published_at !== null ? r : undefined;
      }, 10_000, "first event published");

      // Eight days later (and past the hourly prune interval) another vote wakes the relay.
      clock.advance(8 * 24 * 3600);
      await replica.client(PolicyService, t.carol).externalApproveRelease(vote);
      const remaining = await waitFor(async () => {
        const r = await rows();
        return r.length === 1 && r[0]?.event_id !== old?.event_id && r[0]?.published_at !== null ? r : undefined;
      }, 10_000, "old event deleted, new one published");
      expect(remaining).toHaveLength(1);
      // The audit history is untouched.
      const history = await db.selectFrom("approval_history").select("user_id").where("release_intent_id", "=", id).execute();
      expect(history.map((h) => h.user_id)).toEqual(["bob", "carol"]);
    } finally {
      await replica.stop();
      await deleteStream(SHARED_NATS_URL, local.stream);
    }
  });
});
