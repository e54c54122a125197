import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listHistory, lockVoteBasis, writeVote } from "../src/db/approval.repository.js";
import { outboxInsertFor } from "../src/db/outbox.repository.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { decidedEvent } from "./support/approval-events.js";
import { type Cast, cast, createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { startTestServer, type TestServer } from "./support/server.js";

// Sequence numbers are drawn at insert and commit in any order; a reader
// paging the history from its tail must still never pass a number that
// commits later. Only real Postgres has concurrent writers.

const project = { organisation: "acme", project: "web" };
let server: TestServer;
let t: Cast;

beforeAll(async () => {
  server = await startTestServer({ kind: "postgres" });
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
});
afterAll(() => server?.stop());

const db = () => server.app.database.db;

/** A reader of the project's history that remembers the last sequence it saw (the repository, one row a page). */
function repositoryReader() {
  const seen: bigint[] = [];
  return {
    seen,
    async poll() {
      for (;;) {
        const after = seen.at(-1) ?? 0n;
        const [row] = await listHistory(db(), { project, afterSequence: after, limit: 1 });
        if (row === undefined) return;
        seen.push(row.sequence);
      }
    },
  };
}

/** The same over the wire: follows next_page_token with one entry a page, and re-reads the last page when at the end. */
function wireReader() {
  const seen: bigint[] = [];
  const audit = server.client(ApprovalAuditService, t.alice);
  let token = "";
  return {
    seen,
    async poll() {
      for (;;) {
        const page = await audit.listApprovalHistory({ project, pageSize: 1, pageToken: token });
        for (const e of page.entries) if (!seen.includes(e.sequence)) seen.push(e.sequence);
        if (page.nextPageToken === "") return;
        token = page.nextPageToken;
      }
    },
  };
}

/** Advisory-lock waits of other sessions in the server's database. */
async function waitingOnAdvisoryLock(): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    select count(*) as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and not l.granted and a.datname = current_database()`.execute(db());
  return Number(rows[0]?.n ?? 0);
}

/**
 * Bob's vote on `intent` in a transaction of the locked path (lock the
 * intent, decide, write), kept open until `release` is called.
 */
async function openSlowVote(intent: string) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let written!: () => void;
  const wrote = new Promise<void>((resolve) => {
    written = resolve;
  });
  const committed = db()
    .transaction()
    .execute(async (trx) => {
      const basis = await lockVoteBasis(trx, project, intent, "prod");
      if (basis === undefined) throw new Error("intent not found");
      const event = decidedEvent({ release_intent_id: intent });
      const ok = await writeVote(trx, {
        project,
        releaseIntentId: intent,
        environment: "prod",
        vote: { userId: "bob", username: "Bob", decision: "approved", decisionKind: "peer", decidedAt: new Date() },
        basisVersion: basis.version,
        outbox: outboxInsertFor(event, "releasegate.approvals.acme.web.prod"),
      });
      if (!ok) throw new Error("vote lost its basis");
      written();
      await held;
    });
  await Promise.race([wrote, committed]);
  return { release, committed };
}

/** The project's history rows in sequence order, as `intent:decision_kind`. */
async function allEntries(): Promise<string[]> {
  const rows = await db()
    .selectFrom("approval_history")
    .select(["release_intent_id", "decision_kind"])
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .orderBy("seq")
    .execute();
  return rows.map((r) => `${r.release_intent_id}:${r.decision_kind}`);
}

async function allSequences(): Promise<bigint[]> {
  const rows = await db()
    .selectFrom("approval_history")
    .select("seq")
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .orderBy("seq")
    .execute();
  return rows.map((r) => BigInt(r.seq));
}

describe("approval history from the tail while votes commit out of sequence order", () => {
  it("never lets a reader pass a sequence number that commits later", async () => {
    const [slowIntent, fastIntent1, fastIntent2, earlier] = [
      await registerIntent(server, t.ada, project),
      await registerIntent(server, t.ada, project),
      await registerIntent(server, t.ada, project),
      await registerIntent(server, t.ada, project),
    ];
    const policy = (tok: string) => server.client(PolicyService, tok);
    await policy(t.carol).externalApproveRelease({ project, releaseIntentId: earlier!, targetEnvironment: "prod" });
    const readers = [repositoryReader(), wireReader()];
    for (const r of readers) await r.poll();

    // The slow vote has drawn its sequence number and stays open; two fast
    // votes on other intents of the project come after it.
    const slow = await openSlowVote(slowIntent!);
    const fast = [fastIntent1!, fastIntent2!].map((id) =>
      policy(t.carol).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" }),
    );
    const settled = Promise.allSettled(fast);
    let fastDone = false;
    void settled.then(() => {
      fastDone = true;
    });
    // Either they wait for the slow one (the fix), or they commit first (the race the readers must survive).
    await waitFor(async () => (fastDone || (await waitingOnAdvisoryLock()) === 2 ? true : undefined), 10_000, "fast votes");
    for (const r of readers) await r.poll();

    slow.release();
    await slow.committed;
    for (const result of await settled) expect(result.status).toBe("fulfilled");
    for (const r of readers) await r.poll();

    const all = await allSequences();
    // Four votes, and the approval request each vote through the service opened
    // (the slow vote is written below the use case, so it opens none).
    expect((await allEntries()).sort()).toEqual(
      [
        `${earlier}:request_pending`,
        `${earlier}:peer`,
        `${slowIntent}:peer`,
        `${fastIntent1}:request_pending`,
        `${fastIntent1}:peer`,
        `${fastIntent2}:request_pending`,
        `${fastIntent2}:peer`,
      ].sort(),
    );
    for (const r of readers) expect(r.seen).toEqual(all);
  });

  it("still numbers a project's history in commit order when the fast votes came after the slow one's number", async () => {
    const before = await allSequences();
    const [slowIntent, fastIntent] = [await registerIntent(server, t.ada, project), await registerIntent(server, t.ada, project)];
    const slow = await openSlowVote(slowIntent!);
    const fast = server
      .client(PolicyService, t.carol)
      .externalApproveRelease({ project, releaseIntentId: fastIntent!, targetEnvironment: "prod" });
    let fastDone = false;
    void fast.finally(() => {
      fastDone = true;
    });
    await waitFor(async () => (fastDone || (await waitingOnAdvisoryLock()) === 1 ? true : undefined), 10_000, "fast vote");
    // Nothing of the fast vote is visible while the slow one is open.
    expect(await allSequences()).toEqual(before);
    slow.release();
    await slow.committed;
    await fast;
    const rows = await db()
      .selectFrom("approval_history")
      .select(["seq", "release_intent_id", "decision_kind"])
      .where("seq", ">", (before.at(-1) ?? 0n).toString())
      .orderBy("seq")
      .execute();
    // The fast vote's transaction opens its approval request and writes the vote: both after the slow vote.
    expect(rows.map((r) => `${r.release_intent_id}:${r.decision_kind}`)).toEqual([
      `${slowIntent}:peer`,
      `${fastIntent}:request_pending`,
      `${fastIntent}:peer`,
    ]);
  });

  it("does not make votes of another project wait", async () => {
    const other = { organisation: "acme", project: "api" };
    await createApprovalPolicy(server, t.ada, other, "one-approval", "prod", 1);
    const [slowIntent, otherIntent] = [await registerIntent(server, t.ada, project), await registerIntent(server, t.ada, other)];
    const slow = await openSlowVote(slowIntent!);
    try {
      const res = await server
        .client(PolicyService, t.carol)
        .externalApproveRelease({ project: other, releaseIntentId: otherIntent!, targetEnvironment: "prod" });
      expect(res.state?.currentApprovals).toBe(1);
    } finally {
      slow.release();
      await slow.committed;
    }
  });
});
