import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimUnpublished, markPublished, outboxReplay } from "../../src/db/outbox.repository.js";
import type { ProjectRef } from "../../src/policy/policy.js";
import { decidedEvent } from "../support/approval-events.js";
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

const claim = (db: TestDatabase, limit: number) =>
  db.database.db.transaction().execute((trx) => claimUnpublished(trx, limit));

describe(`outbox claim on ${testDatabaseKind()}`, () => {
  it("claims unpublished rows oldest first, up to the limit, with their events, and not published ones", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const published = await queued(claimDb, a);
    await markPublished(claimDb.database.db, [published], new Date());
    const seqs = [await queued(claimDb, a), await queued(claimDb, b), await queued(claimDb, a)];

    const all = await claim(claimDb, 100);
    expect(all.map((r) => r.seq)).toEqual(seqs);
    expect(all.map((r) => r.releaseIntentId)).toEqual([a, b, a]);
    expect(all.map((r) => r.event.release_intent_id)).toEqual([a, b, a]);
    expect((await claim(claimDb, 2)).map((r) => r.seq)).toEqual(seqs.slice(0, 2));
  });
});

describe("outbox claim while another relay holds rows (Postgres row locks)", () => {
  it("skips the held row and its intent's later rows, so each intent is published in order, and claims the rest", async () => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    const a0 = await queued(lockDb, a);
    const a1 = await queued(lockDb, a);
    const b1 = await queued(lockDb, b);
    await queued(lockDb, a); // a2: behind a1, which the other relay is publishing
    const c1 = await queued(lockDb, c);

    const other = new pg.Client({ connectionString: lockDb.url });
    await other.connect();
    try {
      await other.query("begin");
      await other.query("select seq from outbox where seq = $1 for update", [a1]);
      expect((await claim(lockDb, 100)).map((r) => r.seq)).toEqual([a0, b1, c1]);
      await other.query("rollback");
      // Released: a1 and a2 come now, in order, with everything still unpublished.
      expect((await claim(lockDb, 100)).map((r) => r.releaseIntentId)).toEqual([a, a, b, a, c]);
    } finally {
      await other.end();
    }
  });
});
