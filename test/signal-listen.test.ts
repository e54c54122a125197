
import { sql } from "kysely";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApprovalDecidedEvent } from "../src/approval/event.js";
import { OUTBOX_CHANNEL } from "../src/db/outbox.repository.js";
import { ApprovalEventHub } from "../src/signal/event-hub.js";
import { decidedEvent } from "./support/approval-events.js";
import { waitFor } from "./support/approval-fixtures.js";
import { createPostgresDatabase, createTestDatabase, type TestDatabase } from "./support/database.js";
import { openThroughProxy } from "./support/pg-proxy.js";

let database: TestDatabase;
let hub: ApprovalEventHub;

beforeAll(async () => {
  // A LISTEN connection dying under us is a Postgres matter (a restart, a failover).
  database = await createTestDatabase("postgres");
  hub = new ApprovalEventHub(database.database, pino({ level: "silent" }));
  await hub.start();
});
afterAll(async () => {
  await hub?.stop();
  await database?.dispose();
});

const event = (): ApprovalDecidedEvent => decidedEvent();

describe("ApprovalEventHub", () => {
  it("listens again after its LISTEN connection is terminated", async () => {
    const received: string[] = [];
    const unsubscribe = hub.subscribe({ project: "web" }, (e) => received.push(e.event_id));
    const db = database.database.db;
    const notify = (e: ApprovalDecidedEvent) => sql`select pg_notify(${OUTBOX_CHANNEL}, ${JSON.stringify(e)})`.execute(db);

    const before = event();
    await notify(before);
    await waitFor(() => (received.includes(before.event_id) ? true : undefined), 5_000, "event before the kill");

    const killed = await sql<{ pid: number }>`
      select pg_terminate_backend(pid) as pid from pg_stat_activity
      where datname = current_database() and query ilike 'LISTEN %'`.execute(db);
    expect(killed.rows).toHaveLength(1);

    // Keep notifying until the re-established LISTEN hears one (bounded).
    const after = event();
    await waitFor(async () => {
      await notify(after);
      return received.includes(after.event_id) ? true : undefined;
    }, 15_000, "event after the LISTEN connection was re-established");
    unsubscribe();
  });

  it("listens again when its LISTEN connection goes silent without closing (the liveness ping does not come back)", async () => {
    const pgdb = await createPostgresDatabase();
    // The LISTEN liveness check (Database.listen's) every 200 ms instead of 30 s.
    const { proxy, database: proxied, close } = await openThroughProxy(pgdb.url, { listenCheckMs: 200 });
    const silentHub = new ApprovalEventHub(proxied, pino({ level: "silent" }));
    // Notifications are sent straight to Postgres, around the proxy.
    const direct = new pg.Client({ connectionString: pgdb.url });
    await direct.connect();
    try {
      await silentHub.start();
      const received: string[] = [];
      silentHub.subscribe({}, (e) => received.push(e.event_id));
      const notify = (e: ApprovalDecidedEvent) => direct.query("select pg_notify($1, $2)", [OUTBOX_CHANNEL, JSON.stringify(e)]);
      const before = event();
      await notify(before);
      await waitFor(() => (received.includes(before.event_id) ? true : undefined), 5_000, "event before the freeze");

      expect(proxy.freezeWhere(/LISTEN releasegate_outbox/)).toBe(1);
      const after = event();
      await waitFor(async () => {
        await notify(after);
        return received.includes(after.event_id) ? true : undefined;
      }, 15_000, "event after the silent LISTEN connection was replaced");
    } finally {
      await direct.end();
      await silentHub.stop();
      await close();
      await pgdb.drop();
    }
  });

  it("keeps trying a LISTEN that failed when it started, and delivers once it works", async () => {
    const pgdb = await createPostgresDatabase();
    const { proxy, database: proxied, close } = await openThroughProxy(pgdb.url);
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => lines.push(line) });
    const lateHub = new ApprovalEventHub(proxied, logger, { listenRetryMs: 100 });
    const direct = new pg.Client({ connectionString: pgdb.url });
    await direct.connect();
    try {
      proxy.refusing = true;
      await lateHub.start();
      expect(lines.join("")).toMatch(/cannot LISTEN for approval events/);
      const received: string[] = [];
      lateHub.subscribe({}, (e) => received.push(e.event_id));
      proxy.refusing = false;
      const late = event();
      await waitFor(async () => {
        await direct.query("select pg_notify($1, $2)", [OUTBOX_CHANNEL, JSON.stringify(late)]);
        return received.includes(late.event_id) ? true : undefined;
      }, 10_000, "an event once LISTEN works");
    } finally {
      await direct.end();
      await lateHub.stop();
      await close();
      await pgdb.drop();
    }
  });
});
