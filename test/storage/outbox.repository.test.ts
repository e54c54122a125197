import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  claimUnpublished,
  markPublished,
  outboxDepth,
  outboxReplay,
  releaseClaim,
} from "../../src/db/outbox.repository.js";
import type { ProjectRef } from "../../src/policy/policy.js";
import { decidedEvent } from "../support/approval-events.js";
import { waitFor } from "../support/approval-fixtures.js";
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";

// What a resuming WatchApprovalEvents stream replays, on rows placed by hand:
// an outbox row's created_at is its transaction's start, so a row created
// before the resume point may have committed after it and must come again.

let tdb: TestDatabase;
/** Claim tests get databases of their own: the replay tests leave unpublished rows. */
let claimDb: TestDatabase;
let lockDb: TestDatabase;
beforeAll(async () => {
  [tdb, claimDb, lockDb] = await Promise.all([
    createTestDatabase(),
    createTestDatabase(),
    // Row locks between two relays need two sessions: the machine's Postgres in either run.
    createTestDatabase("postgres"),
  ]);
});
afterAll(() => Promise.all([tdb?.dispose(), claimDb?.dispose(), lockDb?.dispose()]));

const T0 = Date.parse("2026-01-01T12:00:00.000Z");
let n = 0;
const freshProject = (): ProjectRef => ({ organisation: "acme", project: `outbox-${++n}` });

/** Writes one outbox row of `project` created `offsetS` seconds after T0; returns its event id. */
async function row(project: ProjectRef, offsetS: number, environment = "prod", db = tdb): Promise<string> {
  const event = decidedEvent({
    organisation: project.organisation,
    project: project.project,
    environment,
    voter_user_id: `voter-${offsetS}`,
    decided_at: new Date(T0 + offsetS * 1000).toISOString(),
  });
  await db.database.db
    .insertInto("outbox")
    .values({
      event_id: event.event_id,
      release_intent_id: event.release_intent_id,
      subject: "test.approvals",
      payload: JSON.stringify(event),
      created_at: new Date(T0 + offsetS * 1000),
    })
    .execute();
  return event.event_id;
}

const replay = (project: ProjectRef, afterEventId: string, environment?: string) =>
  outboxReplay(tdb.database.db, { project, environment, afterEventId, overlapMs: 60_000, limit: 100 });

describe(`outbox replay on ${testDatabaseKind()}`, () => {
  it("replays everything created from the overlap before the resume point on, oldest first, without the point itself", async () => {
    const project = freshProject();
    const tooOld = await row(project, -61);
    // Created 30 s before the resume point: its transaction may have committed after it.
    const lateCommitter = await row(project, -30);
    const point = await row(project, 0);
    const after1 = await row(project, 10);
    const after2 = await row(project, 20);
    await row(freshProject(), 15); // another project's

    const events = await replay(project, point);
    expect(events?.map((e) => e.event_id)).toEqual([lateCommitter, after1, after2]);
    expect(events?.map((e) => e.event_id)).not.toContain(tooOld);
  });

  it("filters by target environment when asked", async () => {
    const project = freshProject();
    const point = await row(project, 0);
    const prod = await row(project, 5, "prod");
    await row(project, 6, "staging");
    expect((await replay(project, point, "prod"))?.map((e) => e.event_id)).toEqual([prod]);
    expect(await replay(project, point)).toHaveLength(2);
  });

  it("knows no resume point that is unknown or another project's", async () => {
    const project = freshProject();
    const elsewhere = await row(freshProject(), 0);
    expect(await replay(project, randomUUID())).toBeUndefined();
    expect(await replay(project, elsewhere)).toBeUndefined();
  });
});

/** One unpublished outbox row of release intent `intent`, in `db`; returns its seq. */
async function queued(db: TestDatabase, intent: string): Promise<string> {
  const event = decidedEvent({ release_intent_id: intent });
  const { seq } = await db.database.db
    .insertInto("outbox")
    .values({
      event_id: event.event_id,
      release_intent_id: intent,
      subject: "test.approvals",
      payload: JSON.stringify(event),
      created_at: new Date(),
    })
    .returning("seq")
    .executeTakeFirstOrThrow();
  return String(seq);
}

/** A claim of up to `limit` rows under a fresh token; `leaseMs` default one minute. */
async function claim(db: TestDatabase, limit: number, leaseMs = 60_000) {
  const token = randomUUID();
  const rows = await claimUnpublished(db.database.db, { limit, leaseMs, token });
  return { token, rows, seqs: rows.map((r) => r.seq) };
}

/** Claim tests start from an empty outbox (leases of an earlier test would hide rows). */
const emptyOutbox = (db: TestDatabase) => db.database.db.deleteFrom("outbox").execute();

describe(`outbox claim with a lease on ${testDatabaseKind()}`, () => {
  beforeEach(() => emptyOutbox(claimDb));

  it("claims unpublished rows oldest first, up to the limit, with their events, and not published ones", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const done = await claim(claimDb, 1);
    expect(done.rows).toEqual([]);
    const published = await queued(claimDb, a);
    const first = await claim(claimDb, 1);
    expect(await markPublished(claimDb.database.db, first.token, [published], new Date())).toBe(1);
    const seqs = [await queued(claimDb, a), await queued(claimDb, b), await queued(claimDb, a)];

    const two = await claim(claimDb, 2);
    expect(two.seqs).toEqual(seqs.slice(0, 2));
    expect(two.rows.map((r) => r.releaseIntentId)).toEqual([a, b]);
    expect(two.rows.map((r) => r.event.release_intent_id)).toEqual([a, b]);
  });

  it("gives a second claimer none of the leased rows, nor later rows of their intents, and the rest", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const a0 = await queued(claimDb, a);
    const a1 = await queued(claimDb, a);
    const b0 = await queued(claimDb, b);
    const first = await claim(claimDb, 1);
    expect(first.seqs).toEqual([a0]);
    // a1 must wait for a0 (per-intent order); b0 is free.
    expect((await claim(claimDb, 100)).seqs).toEqual([b0]);
    expect((await claim(claimDb, 100)).seqs).toEqual([]);
    expect(await markPublished(claimDb.database.db, first.token, [a0], new Date())).toBe(1);
    expect((await claim(claimDb, 100)).seqs).toEqual([a1]);
  });

  it("lets another claimer take the rows once the lease has run out", async () => {
    const intent = randomUUID();
    const seqs = [await queued(claimDb, intent), await queued(claimDb, intent)];
    const first = await claim(claimDb, 100, 50);
    expect(first.seqs).toEqual(seqs);
    const second = await waitFor(
      async () => {
        const c = await claim(claimDb, 100);
        return c.rows.length > 0 ? c : undefined;
      },
      5_000,
      "the lease to run out",
    );
    expect(second.seqs).toEqual(seqs);
  });

  it("marks nothing for a claim whose rows another claimer took after its lease ran out", async () => {
    const intent = randomUUID();
    const seqs = [await queued(claimDb, intent), await queued(claimDb, intent)];
    const stale = await claim(claimDb, 100, 50);
    const fresh = await waitFor(async () => {
      const c = await claim(claimDb, 100);
      return c.rows.length > 0 ? c : undefined;
    });
    expect(await markPublished(claimDb.database.db, stale.token, seqs, new Date())).toBe(0);
    expect(await markPublished(claimDb.database.db, fresh.token, seqs, new Date())).toBe(2);
    expect(await outboxDepth(claimDb.database.db)).toBe(0);
  });

  it("releases the rows a claim did not publish, for the next claim to take at once", async () => {
    const intent = randomUUID();
    const [s0, s1] = [await queued(claimDb, intent), await queued(claimDb, intent)];
    const first = await claim(claimDb, 100);
    expect(await markPublished(claimDb.database.db, first.token, [s0], new Date())).toBe(1);
    expect((await claim(claimDb, 100)).seqs).toEqual([]);
    expect(await releaseClaim(claimDb.database.db, first.token)).toBe(1);
    expect((await claim(claimDb, 100)).seqs).toEqual([s1]);
  });
});

describe("outbox claim while another claim statement holds rows (Postgres row locks)", () => {
  it("skips the locked row and its intent's later rows, so each intent is published in order, and claims the rest", async () => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    const a0 = await queued(lockDb, a);
    const a1 = await queued(lockDb, a);
    const b1 = await queued(lockDb, b);
    await queued(lockDb, a); // a2: behind a1, which the other claim is taking
    const c1 = await queued(lockDb, c);

    const other = new pg.Client({ connectionString: lockDb.url });
    await other.connect();
    try {
      await other.query("begin");
      await other.query("select seq from outbox where seq = $1 for update", [a1]);
      const first = await claim(lockDb, 100);
      expect(first.seqs).toEqual([a0, b1, c1]);
      await other.query("rollback");
      expect(await markPublished(lockDb.database.db, first.token, first.seqs, new Date())).toBe(3);
      // Released and not leased: a1 and a2 come now, in order.
      expect((await claim(lockDb, 100)).rows.map((r) => r.releaseIntentId)).toEqual([a, a]);
    } finally {
      await other.end();
    }
  });
});
