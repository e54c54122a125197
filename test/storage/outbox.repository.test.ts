import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { outboxReplay } from "../../src/db/outbox.repository.js";
import type { ProjectRef } from "../../src/policy/policy.js";
import { decidedEvent } from "../support/approval-events.js";
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";

// What a resuming WatchApprovalEvents stream replays, on rows placed by hand:
// an outbox row's created_at is its transaction's start, so a row created
// before the resume point may have committed after it and must come again.

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(() => tdb?.dispose());

const T0 = Date.parse("2026-01-01T12:00:00.000Z");
let n = 0;
const freshProject = (): ProjectRef => ({ organisation: "acme", project: `outbox-${++n}` });

/** Writes one outbox row of `project` created `offsetS` seconds after T0; returns its event id. */
async function row(project: ProjectRef, offsetS: number, environment = "prod"): Promise<string> {
  const event = decidedEvent({
    organisation: project.organisation,
    project: project.project,
    environment,
    voter_user_id: `voter-${offsetS}`,
    decided_at: new Date(T0 + offsetS * 1000).toISOString(),
  });
  await tdb.database.db
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
