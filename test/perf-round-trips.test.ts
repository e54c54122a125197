import { randomUUID } from "node:crypto";
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readVoteBasis, writeVote } from "../src/db/approval.repository.js";
import { readEvaluationRows } from "../src/db/evaluation.repository.js";
import { outboxInsertFor } from "../src/db/outbox.repository.js";
import { decidedEvent } from "./support/approval-events.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

/** Counts the statements Kysely sends (a guard against N+1 creeping back). */
class StatementCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.count++;
    return args.node;
  }
  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result);
  }
}

const project = { organisation: "acme", project: "rt" };
const intentId = randomUUID();
const finished = new Date("2026-01-01T10:00:00.123Z");
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  const k = db.database.db;
  await k
    .insertInto("release_intents")
    .values({ id: intentId, organisation: "acme", project: "rt", author_user_id: "ann", author_username: "Ann", branch: "main", version: "v1", created_at: finished, registered_by_user_id: "ann", registered_by_actor_type: "user" })
    .execute();
  await k
    .insertInto("deployments")
    .values([
      { organisation: "acme", project: "rt", environment: "staging", release_intent_id: intentId, status: "succeeded", finished_at: finished, recorded_at: finished },
      { organisation: "acme", project: "rt", environment: "staging", release_intent_id: intentId, status: "succeeded", finished_at: new Date(finished.getTime() - 60_000), recorded_at: new Date(finished.getTime() - 60_000) },
      { organisation: "acme", project: "rt", environment: "qa", release_intent_id: intentId, status: "failed", finished_at: finished, recorded_at: finished },
    ])
    .execute();
  for (const [userId, decision] of [["bob", "approved"], ["cy", "rejected"]] as const)
    await k
      .insertInto("approval_votes")
      .values({
        release_intent_id: intentId,
        environment: "prod",
        user_id: userId,
        username: userId.toUpperCase(),
        decision,
        decision_kind: "peer",
        comment: userId === "cy" ? "not yet" : null,
        first_cast_at: finished,
        decided_at: finished,
      })
      .execute();
});
afterAll(() => db?.dispose());

describe("round trips on the hot paths", () => {
  it("reads an evaluation's intent, latest deploys and votes in one statement", async () => {
    const counter = new StatementCounter();
    const rows = await readEvaluationRows(db.database.db.withPlugin(counter), project, {
      releaseIntentId: intentId,
      sourceEnvironments: ["staging", "qa"],
      votesEnvironment: "prod",
    });
    expect(counter.count).toBe(1);
    expect(rows.intent).toEqual({ branch: "main", author: "ann", registrant: "ann", registrantIsUser: true });
    expect([...rows.lastSuccessfulDeploy]).toEqual([["staging", finished]]);
    expect(rows.votes.map((v) => [v.userId, v.username, v.decision, v.comment])).toEqual([
      ["bob", "BOB", "approved", undefined],
      ["cy", "CY", "rejected", "not yet"],
    ]);
    expect(rows.votes[0]?.decidedAt).toEqual(finished);
  });

  it("reads the newest break-glass in the same one statement", async () => {
    const base = { release_intent_id: intentId, environment: "canary", ...project };
    for (const [reason, at] of [
      ["first emergency", "2026-01-02T10:00:00Z"],
      ["second emergency", "2026-01-02T11:00:00Z"],
    ] as const)
      await db.database.db
        .insertInto("break_glass")
        .values({ ...base, user_id: "ada", username: "Ada", reason, recorded_at: new Date(at), event_id: randomUUID() })
        .execute();
    const counter = new StatementCounter();
    const rows = await readEvaluationRows(db.database.db.withPlugin(counter), project, {
      releaseIntentId: intentId,
      sourceEnvironments: ["staging"],
      votesEnvironment: "canary",
    });
    expect(counter.count).toBe(1);
    expect(rows.breakGlass).toEqual({
      userId: "ada",
      username: "Ada",
      reason: "second emergency",
      recordedAt: new Date("2026-01-02T11:00:00Z"),
    });
  });

  it("reports an intent of another project as absent, in the same one statement", async () => {
    const counter = new StatementCounter();
    const rows = await readEvaluationRows(db.database.db.withPlugin(counter), { organisation: "acme", project: "other" }, {
      releaseIntentId: intentId,
      sourceEnvironments: [],
    });
    expect(counter.count).toBe(1);
    expect(rows.intent).toBeUndefined();
  });

  it("sends no statement when the applicable policies need nothing from the database", async () => {
    const counter = new StatementCounter();
    const rows = await readEvaluationRows(db.database.db.withPlugin(counter), project, { sourceEnvironments: [] });
    expect(counter.count).toBe(0);
    expect(rows.votes).toEqual([]);
  });

  const voteWrite = (basisVersion: string, previous?: "approved" | "rejected") => {
    const decidedAt = new Date("2026-01-02T10:00:00.456Z");
    const event = decidedEvent({
      organisation: project.organisation,
      project: project.project,
      release_intent_id: intentId,
      voter_user_id: "cy",
      voter_username: "CY",
      current_approvals: 2,
      passed: true,
      decided_at: decidedAt.toISOString(),
    });
    return {
      project,
      releaseIntentId: intentId,
      environment: "prod",
      vote: { userId: "cy", username: "CY", decision: "approved" as const, decisionKind: "peer" as const, decidedAt },
      ...(previous !== undefined ? { previous } : {}),
      basisVersion,
      outbox: outboxInsertFor(event, "test.approvals"),
    };
  };

  it("votes in two statements: the basis (author, version, votes), then a write that holds only if the version did", async () => {
    const counter = new StatementCounter();
    const k = db.database.db.withPlugin(counter);
    const basis = await readVoteBasis(k, project, intentId, "prod");
    expect(basis?.authorUserId).toBe("ann");
    expect(basis?.votes.map((v) => [v.userId, v.decision, v.comment])).toEqual([
      ["bob", "approved", undefined],
      ["cy", "rejected", "not yet"],
    ]);
    const stale = basis?.version ?? "";
    expect(await writeVote(k, voteWrite(stale, "rejected"))).toBe(true);
    expect(counter.count).toBe(2);

    // cy keeps the place of the first cast; the comment went with the changed vote.
    const after = await readVoteBasis(db.database.db, project, intentId, "prod");
    expect(after?.version).toBe(String(BigInt(stale) + 1n));
    expect(after?.votes.map((v) => [v.userId, v.decision, v.comment])).toEqual([
      ["bob", "approved", undefined],
      ["cy", "approved", undefined],
    ]);
    const history = await db.database.db
      .selectFrom("approval_history")
      .select(["user_id", "decision", "previous_decision"])
      .where("release_intent_id", "=", intentId)
      .execute();
    expect(history).toEqual([{ user_id: "cy", decision: "approved", previous_decision: "rejected" }]);
    const outbox = await db.database.db.selectFrom("outbox").select("subject").where("release_intent_id", "=", intentId).execute();
    expect(outbox).toEqual([{ subject: "test.approvals" }]);

    // A write decided on the old basis changes nothing: not the vote, the history or the outbox.
    expect(await writeVote(db.database.db, voteWrite(stale, "rejected"))).toBe(false);
    expect((await readVoteBasis(db.database.db, project, intentId, "prod"))?.version).toBe(after?.version);
    const counts = await db.database.db
      .selectNoFrom((eb) => [
        eb.selectFrom("approval_history").select((e) => e.fn.countAll<string>().as("n")).where("release_intent_id", "=", intentId).as("history"),
        eb.selectFrom("outbox").select((e) => e.fn.countAll<string>().as("n")).where("release_intent_id", "=", intentId).as("outbox"),
      ])
      .executeTakeFirstOrThrow();
    // count(*) is a bigint: pg returns it as a string, PGlite as a number.
    expect({ history: Number(counts.history), outbox: Number(counts.outbox) }).toEqual({ history: 1, outbox: 1 });
  });

  it("reads no basis for an intent of another project", async () => {
    expect(await readVoteBasis(db.database.db, { organisation: "acme", project: "other" }, intentId, "prod")).toBeUndefined();
  });
});
