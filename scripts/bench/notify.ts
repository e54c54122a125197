/**
 * Webhook delivery throughput of the notifier next to the bare outbox relay,
 * in one run on one database: a burst of events is written to the outbox
 * (its trigger writes one delivery each for one subscription), then the
 * relay publishes them all to JetStream, then the delivery worker POSTs them
 * all to a local receiver; each is timed from start to the last row done.
 *
 *   node dist/scripts/bench/notify.js [--quick]   # this section alone
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { pino } from "pino";
import type { ApprovalDecidedEvent } from "../../src/approval/event.js";
import { systemClock } from "../../src/clock.js";
import { DEFAULT_WEBHOOK_CONCURRENCY, DEFAULT_WEBHOOK_TIMEOUT_MS } from "../../src/config.js";
import { type Database, openDatabase } from "../../src/db/database.js";
import { migrateDatabase } from "../../src/db/migrate.js";
import { outboxDepth, outboxInsertFor } from "../../src/db/outbox.repository.js";
import { openDeliveryCount } from "../../src/db/webhook.repository.js";
import { perSubscriptionSlots, WebhookDeliveryWorker } from "../../src/notify/delivery-worker.js";
import { NatsPublisher } from "../../src/signal/nats-publisher.js";
import { OutboxRelay } from "../../src/signal/outbox-relay.js";
import { approvalSubject } from "../../src/signal/subject.js";
import { createBenchDatabase } from "./fixtures.js";
import { type BenchSettings, FULL, QUICK, waitFor } from "./load.js";
import { deleteStream } from "./signal.js";

export interface NotifyResult {
  readonly events: number;
  readonly intents: number;
  readonly concurrency: number;
  /** Outbox rows published to JetStream per second by the relay alone. */
  readonly relayPerSecond: number;
  /** Deliveries answered 2xx per second by the delivery worker alone. */
  readonly notifierPerSecond: number;
}

/** Longest either side may take to drain the burst. */
const DRAIN_TIMEOUT_MS = 300_000;

/** A burst of `events` approval events over `intents` release intents, written straight to the outbox. */
async function writeBurst(database: Database, prefix: string, events: number, intents: number): Promise<void> {
  const ids = Array.from({ length: intents }, () => randomUUID());
  const rows = Array.from({ length: events }, (_, i) => {
    const event: ApprovalDecidedEvent = {
      event_id: randomUUID(),
      kind: "approval.decided",
      organisation: "bench",
      project: "notify",
      environment: "prod",
      release_intent_id: ids[i % intents] as string,
      voter_user_id: `voter-${i}`,
      voter_username: `voter-${i}`,
      decision: "approved",
      decision_kind: "peer",
      current_approvals: 1,
      required_approvals: 2,
      passed: false,
      decided_at: new Date().toISOString(),
    };
    const o = outboxInsertFor(event, approvalSubject(prefix, "bench", "notify", "prod"));
    return { event_id: o.eventId, release_intent_id: event.release_intent_id, subject: o.subject, payload: o.json, created_at: new Date() };
  });
  for (let i = 0; i < rows.length; i += 500)
    await database.db
      .insertInto("outbox")
      .values(rows.slice(i, i + 500).map((r) => ({ ...r, payload: sql`${r.payload}::jsonb` as never })))
      .execute();
}

async function timeUntil(done: () => Promise<boolean>, what: string): Promise<number> {
  const started = performance.now();
  await waitFor(what, DRAIN_TIMEOUT_MS, done);
  return (performance.now() - started) / 1000;
}

export async function benchNotify(settings: BenchSettings, natsUrl: string): Promise<NotifyResult> {
  const events = settings.quick ? 200 : 5_000;
  const intents = settings.quick ? 50 : 500;
  const concurrency = DEFAULT_WEBHOOK_CONCURRENCY;
  const logger = pino({ level: "silent" });
  const bench = await createBenchDatabase();
  const receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const stream = `RG_BENCH_NOTIFY_${randomUUID().slice(0, 8)}`;
  const prefix = `rgbenchnotify${randomUUID().slice(0, 8)}.approvals`;
  const database = await openDatabase({ databaseUrl: bench.url, dataDir: "", poolSize: 10 });
  const publisher = new NatsPublisher({ servers: natsUrl, stream, subjectPrefix: prefix, logger });
  try {
    await migrateDatabase(database);
    await database.db
      .insertInto("webhook_subscriptions")
      .values({
        id: randomUUID(),
        organisation: "bench",
        project: null,
        environment: null,
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
        event_kinds: sql`array['approval.decided']::text[]` as never,
        format: "json",
        secret: "bench-secret-0123456789",
        enabled: true,
        created_by: "bench",
        created_at: new Date(),
        updated_at: new Date(),
      })
      .execute();
    await writeBurst(database, prefix, events, intents);

    // The relay alone, to JetStream.
    publisher.start();
    await waitFor("NATS publisher ready", 15_000, async () => publisher.ready);
    const relay = new OutboxRelay({ database, publisher, logger, clock: systemClock });
    relay.start();
    relay.wake();
    const relaySeconds = await timeUntil(async () => (await outboxDepth(database.db)) === 0, "the relay to drain the outbox");
    await relay.stop();

    // The delivery worker alone, to the receiver.
    const worker = new WebhookDeliveryWorker({
      database,
      logger,
      backoff: { baseMs: 100, maxMs: 1_000, maxAttempts: 10 },
      timeoutMs: DEFAULT_WEBHOOK_TIMEOUT_MS,
      concurrency,
      allowPrivateNetworks: true,
      publicUrl: "http://localhost:50051",
      pollIntervalMs: 50,
    });
    worker.start();
    const notifierSeconds = await timeUntil(async () => (await openDeliveryCount(database.db)) === 0, "the worker to deliver");
    await worker.stop();
    const failed = await database.db.selectFrom("webhook_deliveries").select("id").where("status", "<>", "delivered").execute();
    if (failed.length > 0) throw new Error(`${failed.length} deliveries not delivered`);
    return { events, intents, concurrency, relayPerSecond: events / relaySeconds, notifierPerSecond: events / notifierSeconds };
  } finally {
    await publisher.stop();
    await database.destroy();
    await bench.drop();
    await deleteStream(natsUrl, stream).catch(() => undefined);
    receiver.close();
  }
}

/** The report's section on it. */
export const notifySection = (n: NotifyResult): string[] => [
  `A burst of ${n.events.toLocaleString("en-US")} \`approval.decided\` events over ${n.intents} release intents is written to the outbox of one Postgres database with one webhook subscription (so the outbox trigger writes ${n.events.toLocaleString("en-US")} deliveries). The outbox relay alone publishes them to JetStream; then the delivery worker alone (${n.concurrency} attempt slots, of which one subscription may use ${perSubscriptionSlots(n.concurrency)}; per-request order kept) POSTs each, signed, to a local HTTP receiver answering 204. Each is timed from start until its last row is done.`,
  "",
  "| relay (events/s) | notifier (deliveries/s) | notifier / relay |",
  "| ---: | ---: | ---: |",
  `| ${Math.round(n.relayPerSecond).toLocaleString("en-US")} | ${Math.round(n.notifierPerSecond).toLocaleString("en-US")} | ${(n.notifierPerSecond / n.relayPerSecond).toFixed(2)} |`,
  "",
];

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
  const result = await benchNotify(values.quick ? QUICK : FULL, process.env.NATS_URL ?? "nats://127.0.0.1:4222");
  process.stdout.write(`${JSON.stringify(result)}\n${notifySection(result).join("\n")}\n`);
}
