import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { sql } from "kysely";
import pg from "pg";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { ApprovalDecidedEvent } from "../src/approval/event.js";
import { systemClock } from "../src/clock.js";
import type { OutboxRow } from "../src/db/outbox.repository.js";
import type { EventPublisher } from "../src/signal/nats-publisher.js";
import { OutboxRelay } from "../src/signal/outbox-relay.js";
import { decidedEvent } from "./support/approval-events.js";
import { waitFor } from "./support/approval-fixtures.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

// The relay against a real database with a publisher that answers only when
// the test says so: what the relay holds in the database while it waits on
// NATS, and how a second relay takes over rows whose lease ran out.

const logger = pino({ level: "silent" });

/** A publisher whose publishes wait until `releaseAll()`, recording when each started. */
class HeldPublisher implements EventPublisher {
  readonly ready = true;
  readonly started: { row: OutboxRow; at: number }[] = [];
  #release: (() => void)[] = [];
  #open = false;
  constructor(open = false) {
    this.#open = open;
  }
  publish(row: OutboxRow): Promise<void> {
    this.started.push({ row, at: performance.now() });
    if (this.#open) return Promise.resolve();
    return new Promise((resolve) => this.#release.push(resolve));
  }
  /** Lets every waiting and future publish succeed. */
  releaseAll(): void {
    this.#open = true;
    for (const r of this.#release.splice(0)) r();
  }
}

const disposers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const d of disposers.splice(0).reverse()) await d();
});

async function database(): Promise<TestDatabase> {
  const test = await createTestDatabase("postgres");
  disposers.push(() => test.dispose());
  return test;
}

function relay(
  test: TestDatabase,
  publisher: HeldPublisher,
  options: { leaseMs?: number; pollIntervalMs?: number; onPublished?: (row: OutboxRow) => void } = {},
) {
  const r = new OutboxRelay({ database: test.database, publisher, logger, clock: systemClock, ...options });
  disposers.push(async () => {
    // A stopping relay waits for its drain, which waits for these publishes.
    publisher.releaseAll();
    await r.stop();
  });
  return r;
}

async function commit(test: TestDatabase, events: readonly ApprovalDecidedEvent[]): Promise<void> {
  for (const e of events)
    await test.database.db
      .insertInto("outbox")
      .values({
        event_id: e.event_id,
        release_intent_id: e.release_intent_id,
        subject: "test.approvals",
        payload: JSON.stringify(e),
        created_at: new Date(),
      })
      .execute();
}

const event = (intent: string, n: number) => decidedEvent({ release_intent_id: intent, current_approvals: n });

describe("outbox relay leases (Postgres)", () => {
  it("holds no transaction and no lock while a publish waits on NATS", async () => {
    const test = await database();
    await commit(test, [event(randomUUID(), 1), event(randomUUID(), 1)]);
    const publisher = new HeldPublisher();
    relay(test, publisher).start();
    await waitFor(() => (publisher.started.length === 2 ? true : undefined), 10_000, "both publishes to start");

    // Looked at from a session of its own: every session of the relay's pool is someone else's.
    const observer = new pg.Client({ connectionString: test.url });
    await observer.connect();
    try {
      const sessions = await observer.query<{ state: string | null; xid: string | null }>(
        `select state, backend_xid::text as xid from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
      );
      expect(sessions.rows.length, "the relay's pool has a connection").toBeGreaterThan(0);
      expect(sessions.rows.filter((s) => s.state?.startsWith("idle in transaction") || s.xid !== null)).toEqual([]);
      const locks = await observer.query<{ locktype: string; mode: string }>(
        `select l.locktype, l.mode from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where a.datname = current_database() and l.pid <> pg_backend_pid()
            and l.locktype in ('relation', 'tuple', 'transactionid')`,
      );
      expect(locks.rows).toEqual([]);
    } finally {
      await observer.end();
    }
    // What keeps other relays off the rows is the lease.
    const { rows: leased } = await sql<{ n: string }>`
      select count(*) as n from outbox
       where published_at is null and claimed_until > now() and claim_token is not null`.execute(test.database.db);
    expect(Number(leased[0]?.n)).toBe(2);

    publisher.releaseAll();
    await waitFor(
      async () => ((await test.database.db.selectFrom("outbox").select("published_at").execute()).every((r) => r.published_at !== null) ? true : undefined),
      10_000,
      "rows marked published",
    );
  });

  it("lets a second relay take over a stuck relay's rows only when the lease has run out, in order, and the stuck one's mark is void", async () => {
    const test = await database();
    const [x, y] = [randomUUID(), randomUUID()];
    const events = [event(x, 1), event(x, 2), event(y, 1)];
    await commit(test, events);
    const stuck = new HeldPublisher();
    const leaseMs = 1_500;
    // Called after the relay's mark statement.
    const stuckMarked: OutboxRow[] = [];
    relay(test, stuck, { leaseMs, onPublished: (row) => stuckMarked.push(row) }).start();
    await waitFor(() => (stuck.started.length === 2 ? true : undefined), 10_000, "the stuck relay's first publishes");
    const stuckSince = Math.min(...stuck.started.map((s) => s.at));

    const healthy = new HeldPublisher(true);
    relay(test, healthy, { pollIntervalMs: 25 }).start();
    await waitFor(() => (healthy.started.length === 3 ? true : undefined), 10_000, "the second relay to publish all");
    // Not before the stuck relay's lease ran out (its claim came a little before its first publish).
    expect(healthy.started[0]!.at - stuckSince).toBeGreaterThan(leaseMs - 100);
    const order = healthy.started.map((s) => s.row.eventId);
    expect(order.indexOf(events[0]!.event_id)).toBeLessThan(order.indexOf(events[1]!.event_id));
    await waitFor(
      async () => {
        const rows = await test.database.db.selectFrom("outbox").select("published_at").execute();
        return rows.every((r) => r.published_at !== null) ? true : undefined;
      },
      10_000,
      "the second relay's marks",
    );
    const marked = await test.database.db.selectFrom("outbox").select(["event_id", "published_at"]).execute();

    // The stuck relay's publish finally answers: it starts nothing more (its
    // lease is over) and its mark changes nothing.
    stuck.releaseAll();
    await waitFor(() => (stuckMarked.length === 2 ? true : undefined), 5_000, "the stuck relay's mark");
    expect(stuck.started).toHaveLength(2);
    expect(await test.database.db.selectFrom("outbox").select(["event_id", "published_at"]).execute()).toEqual(marked);
  });
});
