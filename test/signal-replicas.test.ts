import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "replicated" };
const INTENTS = 6;
const VOTERS = 10;
const names = uniqueSignalNames();
let database: TestDatabase;
let a: TestServer;
let b: TestServer;
let nc: NatsConnection;
let evaluate: Subscription;
const coreIds: string[] = [];

beforeAll(async () => {
  nc = await connectSharedNats();
  evaluate = nc.subscribe("forest.intent.evaluate");
  void (async () => {
    for await (const m of evaluate) coreIds.push(m.string());
  })();
  // Replicas only make sense on a shared Postgres database.
  database = await createTestDatabase("postgres");
  const env = { NATS_URL: SHARED_NATS_URL, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix };
  a = await startTestServer({ shared: database, env });
  b = await startTestServer({ shared: database, env });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await database?.dispose();
  evaluate?.unsubscribe();
  await nc?.close();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

describe("two servers on one database", () => {
  it("relay every event exactly once, in order per release intent, and both feed Watch streams", async () => {
    const admin = await token({ sub: "ada", orgs: { acme: "admin" } });
    await createApprovalPolicy(a, admin, project, "all-voters", "prod", VOTERS);
    const intents = await Promise.all(Array.from({ length: INTENTS }, () => registerIntent(a, admin, project)));
    const voters = await Promise.all(
      Array.from({ length: VOTERS }, (_, i) => token({ sub: `voter-${i}`, orgs: { acme: "member" } })),
    );
    // A Watch stream on replica b sees the votes committed through a as well (outbox NOTIFY).
    const watching = new AbortController();
    const watched: string[] = [];
    const stream = b
      .client(ApprovalAuditService, admin)
      .watchApprovalEvents({ project }, { signal: watching.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value).toMatchObject({ subscribed: true });
    const collecting = (async () => {
      try {
        for (let r = await stream.next(); !r.done; r = await stream.next())
          if (r.value.event) watched.push(r.value.event.eventId);
      } catch (err) {
        if (!watching.signal.aborted) throw err;
      }
    })();

    // Every vote goes to one of the two replicas; both relays race for the outbox.
    await Promise.all(
      intents.flatMap((id, i) =>
        voters.map((tok, v) =>
          ((i + v) % 2 === 0 ? a : b)
            .client(PolicyService, tok)
            .externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" }),
        ),
      ),
    );
    // Per intent: the approval request its first vote opened (approval.requested), the VOTERS votes
    // (approval.decided), and the approval the last vote made (approval.approved).
    const perIntent = VOTERS + 2;
    const total = INTENTS * perIntent;
    const stored = await waitFor(async () => {
      const all = await readStream(nc, names.stream);
      return all.length === total ? all : undefined;
    }, 20_000, `${total} events in the stream`);
    await waitFor(() => (coreIds.length >= total ? true : undefined), 10_000, "core messages");
    await waitFor(async () => ((await a.app.relay.outboxDepth()) === 0 ? true : undefined), 5_000, "outbox marked");
    await waitFor(() => (watched.length >= total ? true : undefined), 10_000, "watched events");
    watching.abort();
    await collecting;
    expect(new Set(watched)).toEqual(new Set(stored.map((m) => m.event.event_id)));

    for (const id of intents) {
      const events = stored.filter((m) => m.event.release_intent_id === id).map((m) => m.event);
      expect(events.map((e) => e.kind)).toEqual([
        "approval.requested",
        ...Array.from({ length: VOTERS }, () => "approval.decided"),
        "approval.approved",
      ]);
      const counts = events.filter((e) => e.kind === "approval.decided").map((e) => e.current_approvals);
      expect(counts).toEqual(Array.from({ length: VOTERS }, (_, i) => i + 1));
      expect(events.at(-1)).toMatchObject({ request_id: events[0]?.request_id, current_approvals: VOTERS, passed: true });
    }
    // Stopping drains both NATS connections: anything published twice would have arrived by now.
    await a.stop();
    await b.stop();
    await nc.flush();
    for (const id of intents) expect(coreIds.filter((x) => x === id)).toHaveLength(perIntent);
  });
});
