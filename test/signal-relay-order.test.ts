import { randomUUID } from "node:crypto";
import { DiscardPolicy, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ApprovalDecidedEvent } from "../src/approval/event.js";
import { systemClock } from "../src/clock.js";
import { NatsPublisher } from "../src/signal/nats-publisher.js";
import { OutboxRelay } from "../src/signal/outbox-relay.js";
import { approvalSubject, FOREST_EVALUATE_SUBJECT } from "../src/signal/subject.js";
import { decidedEvent } from "./support/approval-events.js";
import { waitFor } from "./support/approval-fixtures.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";

// The relay on its own, fed rows written straight into the outbox before it
// starts, so one claimed batch holds them all: intents are published
// concurrently, each intent's events in commit order.

const logger = pino({ level: "silent" });
let nc: NatsConnection;
let evaluate: Subscription;
const evaluateIds: string[] = [];

beforeAll(async () => {
  nc = await connectSharedNats();
  evaluate = nc.subscribe(FOREST_EVALUATE_SUBJECT);
  void (async () => {
    for await (const m of evaluate) evaluateIds.push(m.string());
  })();
});
afterAll(async () => {
  evaluate?.unsubscribe();
  await nc?.close();
});

/** One event: `n` (1-based) is its place in the intent's commit order. */
function decided(intent: string, environment: string, n: number): ApprovalDecidedEvent {
  return decidedEvent({
    environment,
    release_intent_id: intent,
    voter_user_id: `voter-${n}`,
    voter_username: `Voter ${n}`,
    current_approvals: n,
    required_approvals: 100,
  });
}

interface Fixture {
  readonly test: TestDatabase;
  readonly names: { stream: string; prefix: string };
  readonly publisher: NatsPublisher;
  readonly relay: OutboxRelay;
  readonly errors: unknown[];
}
let fixture: Fixture | undefined;

/**
 * A database, a stream created here (so a test can set its limits), a ready
 * publisher and a relay that is not started yet.
 */
async function setUp(kind: "postgres" | "pglite", limits: { maxMsgsPerSubject?: number } = {}): Promise<Fixture> {
  const test = await createTestDatabase(kind);
  const names = uniqueSignalNames();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: names.stream,
    subjects: [`${names.prefix}.>`],
    ...(limits.maxMsgsPerSubject === undefined
      ? {}
      : {
          // The stream refuses a subject's next message once it holds this many.
          max_msgs_per_subject: limits.maxMsgsPerSubject,
          discard: DiscardPolicy.New,
          discard_new_per_subject: true,
        }),
  });
  const errors: unknown[] = [];
  let relay: OutboxRelay | undefined;
  const publisher = new NatsPublisher({
    servers: SHARED_NATS_URL,
    stream: names.stream,
    subjectPrefix: names.prefix,
    logger,
    onReady: () => relay?.wake(),
  });
  relay = new OutboxRelay({
    database: test.database,
    publisher,
    logger,
    clock: systemClock,
    onPublishError: (err) => errors.push(err),
  });
  fixture = { test, names, publisher, relay, errors };
  publisher.start();
  await waitFor(() => (publisher.ready ? true : undefined), 10_000, "publisher ready");
  return fixture;
}

afterEach(async () => {
  const f = fixture;
  fixture = undefined;
  if (f === undefined) return;
  await f.relay.stop();
  await f.publisher.stop();
  await f.test.dispose();
  await deleteStream(SHARED_NATS_URL, f.names.stream);
});

/**
 * Writes the events into the outbox in this order (seq order), as committed
 * votes leave them; no NOTIFY needed, the relay starts afterwards.
 */
async function commit(f: Fixture, events: readonly ApprovalDecidedEvent[]): Promise<void> {
  for (const e of events)
    await f.test.database.db
      .insertInto("outbox")
      .values({
        event_id: e.event_id,
        release_intent_id: e.release_intent_id,
        subject: approvalSubject(f.names.prefix, e.organisation, e.project, e.environment),
        payload: JSON.stringify(e),
        created_at: new Date(),
      })
      .execute();
}

/** event_id → published or not, from the outbox. */
async function marks(f: Fixture): Promise<Map<string, boolean>> {
  const rows = await f.test.database.db.selectFrom("outbox").select(["event_id", "published_at"]).execute();
  return new Map(rows.map((r) => [r.event_id, r.published_at !== null]));
}

/** The stream's events of `intent`, as their place in the intent's commit order. */
async function storedOrder(f: Fixture, intent: string): Promise<number[]> {
  const stored = await readStream(nc, f.names.stream);
  for (const m of stored) expect(m.msgId).toBe(m.event.event_id);
  return stored.filter((m) => m.event.release_intent_id === intent).map((m) => Number(m.event.current_approvals));
}

describe.each(["postgres", "pglite"] as const)("outbox relay on %s", (kind) => {
  it("publishes a burst over many intents each exactly once, in commit order per intent", async () => {
    const f = await setUp(kind);
    const INTENTS = 12;
    const PER_INTENT = 8;
    const intents = Array.from({ length: INTENTS }, () => randomUUID());
    // Interleaved as a vote burst commits them; two environments, so two subjects.
    const events = Array.from({ length: PER_INTENT }, (_, n) =>
      intents.map((id, i) => decided(id, i % 2 === 0 ? "prod" : "staging", n + 1)),
    ).flat();
    await commit(f, events);

    f.relay.start();
    await waitFor(async () => ((await f.relay.outboxDepth()) === 0 ? true : undefined), 15_000, "outbox drained");
    expect(f.errors).toEqual([]);
    const stored = await readStream(nc, f.names.stream);
    expect(stored).toHaveLength(events.length);
    expect(new Set(stored.map((m) => m.msgId))).toEqual(new Set(events.map((e) => e.event_id)));
    for (const id of intents) expect(await storedOrder(f, id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    // One core wake-up per event (the documented contract), none doubled:
    // stopping drains the publisher's connection, so all have arrived after a flush.
    await f.relay.stop();
    await f.publisher.stop();
    await nc.flush();
    for (const id of intents) expect(evaluateIds.filter((x) => x === id)).toHaveLength(PER_INTENT);
  });

  it("stops a rejected intent at the failed row and still marks the other intents' events", async () => {
    // Each subject takes two messages: the third event of `stuck` is refused.
    const f = await setUp(kind, { maxMsgsPerSubject: 2 });
    const stuck = randomUUID();
    const others = [randomUUID(), randomUUID(), randomUUID()];
    const s = [1, 2, 3, 4].map((n) => decided(stuck, "prod", n));
    // Each other intent on its own subject, two events each, committed after the refused one.
    const o = others.map((id, i) => [1, 2].map((n) => decided(id, `env-${i}`, n)));
    await commit(f, [s[0]!, o[0]![0]!, s[1]!, o[1]![0]!, s[2]!, o[2]![0]!, s[3]!, o[0]![1]!, o[1]![1]!, o[2]![1]!]);

    f.relay.start();
    await waitFor(() => (f.errors.length > 0 ? true : undefined), 15_000, "the refused publish");
    // The batch that failed committed the marks of everything that was acknowledged.
    const afterFirst = await marks(f);
    for (const e of o.flat()) expect(afterFirst.get(e.event_id), `${e.release_intent_id} #${e.current_approvals}`).toBe(true);
    expect(s.map((e) => afterFirst.get(e.event_id))).toEqual([true, true, false, false]);
    expect(await storedOrder(f, stuck)).toEqual([1, 2]);
    for (const id of others) expect(await storedOrder(f, id)).toEqual([1, 2]);

    // Retries (with backoff) keep stopping at the same row: nothing overtakes it, nothing is doubled.
    await waitFor(() => (f.errors.length >= 3 ? true : undefined), 15_000, "two retries");
    const afterRetries = await marks(f);
    expect(s.map((e) => afterRetries.get(e.event_id))).toEqual([true, true, false, false]);
    expect(await storedOrder(f, stuck)).toEqual([1, 2]);
    expect(await readStream(nc, f.names.stream)).toHaveLength(2 + others.length * 2);

    // Lift the limit: the next retry publishes the rest of the intent, in order.
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(f.names.stream);
    await jsm.streams.update(f.names.stream, {
      ...info.config,
      max_msgs_per_subject: -1,
      discard: DiscardPolicy.Old,
      discard_new_per_subject: false,
    });
    await waitFor(async () => ((await f.relay.outboxDepth()) === 0 ? true : undefined), 15_000, "outbox drained");
    expect(await storedOrder(f, stuck)).toEqual([1, 2, 3, 4]);
    for (const id of others) expect(await storedOrder(f, id)).toEqual([1, 2]);
  });
});
