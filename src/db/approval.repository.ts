import { type Kysely, sql, type Transaction } from "kysely";
import type { Decision, DecisionKind, Vote } from "../approval/vote.js";
import type { ProjectRef } from "../policy/policy.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/** Current votes for an intent in one environment, in the order first cast. */
export async function listCurrentVotes(db: Db, releaseIntentId: string, environment: string): Promise<Vote[]> {
  const rows = await db
    .selectFrom("approval_votes")
    .select(["user_id", "username", "decision", "decision_kind", "decided_at", "comment"])
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment)
    .orderBy("first_cast_seq")
    .execute();
  return rows.map(toVote);
}

interface VoteColumns {
  user_id: string;
  username: string;
  decision: string;
  decision_kind: string;
  decided_at: Date;
  comment: string | null;
}

function toVote(r: VoteColumns): Vote {
  return {
    userId: r.user_id,
    username: r.username,
    decision: r.decision as Decision,
    decisionKind: r.decision_kind as DecisionKind,
    decidedAt: r.decided_at,
    ...(r.comment !== null ? { comment: r.comment } : {}),
  };
}

/**
 * Locks the release intent row for the rest of the transaction and returns
 * its author, or undefined when the intent is not in `project`. Every vote
 * on an intent takes this lock first, so votes on one intent run one at a
 * time and each sees the votes committed before it (a serial order).
 * `FOR NO KEY UPDATE` serialises the votes without blocking the foreign-key
 * checks of deployments and history rows that reference the intent.
 */
export async function lockIntentForVote(
  trx: Transaction<DB>,
  project: ProjectRef,
  releaseIntentId: string,
): Promise<{ authorUserId: string } | undefined> {
  const row = await trx
    .selectFrom("release_intents")
    .select("author_user_id")
    .where("id", "=", releaseIntentId)
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .forNoKeyUpdate()
    .executeTakeFirst();
  return row === undefined ? undefined : { authorUserId: row.author_user_id };
}

/** A vote as `json_build_array(user_id, username, decision, decision_kind, decided_at, comment)`. */
export type VoteJson = [string, string, string, string, string, string | null];

/** Maps `json_agg` of VoteJson arrays (null when there were none) to votes; timestamps arrive as ISO strings. */
export function votesFromJson(rows: readonly VoteJson[] | null | undefined): Vote[] {
  return (rows ?? []).map(([userId, username, decision, decisionKind, decidedAt, comment]) => ({
    userId,
    username,
    decision: decision as Decision,
    decisionKind: decisionKind as DecisionKind,
    decidedAt: new Date(decidedAt),
    ...(comment !== null ? { comment } : {}),
  }));
}

export interface CastVote {
  readonly project: ProjectRef;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly vote: Vote;
}

export interface CastResult {
  /** The user's current decision before this vote, if any. */
  readonly previous?: Decision;
  /** The current votes after this one, in the order first cast. */
  readonly votes: Vote[];
}

/**
 * Makes `vote` the user's current vote (keeping the order it was first cast
 * in), appends it to the immutable history, and returns the previous
 * decision and the current votes. Call with the intent locked
 * (`lockIntentForVote`): then every other vote on the intent has committed.
 *
 * One statement, one round trip: every part of it sees the snapshot taken
 * at its start, so `previous` is the vote as it was before the upsert and the
 * current votes are the others' plus the upserted row; Postgres runs each
 * data-modifying CTE exactly once.
 */
export async function castVote(trx: Transaction<DB>, c: CastVote): Promise<CastResult> {
  const { vote } = c;
  const row = await trx
    .with("previous", (db) =>
      db
        .selectFrom("approval_votes")
        .select("decision")
        .where("release_intent_id", "=", c.releaseIntentId)
        .where("environment", "=", c.environment)
        .where("user_id", "=", vote.userId),
    )
    .with("upserted", (db) =>
      db
        .insertInto("approval_votes")
        .values({
          release_intent_id: c.releaseIntentId,
          environment: c.environment,
          user_id: vote.userId,
          username: vote.username,
          decision: vote.decision,
          decision_kind: vote.decisionKind,
          comment: vote.comment ?? null,
          first_cast_at: vote.decidedAt,
          decided_at: vote.decidedAt,
        })
        .onConflict((oc) =>
          oc.columns(["release_intent_id", "environment", "user_id"]).doUpdateSet((eb) => ({
            username: eb.ref("excluded.username"),
            decision: eb.ref("excluded.decision"),
            decision_kind: eb.ref("excluded.decision_kind"),
            comment: eb.ref("excluded.comment"),
            decided_at: eb.ref("excluded.decided_at"),
          })),
        )
        .returning(["user_id", "username", "decision", "decision_kind", "decided_at", "comment", "first_cast_seq"]),
    )
    .with("logged", (db) =>
      db
        .insertInto("approval_history")
        .values((eb) => ({
          organisation: c.project.organisation,
          project: c.project.project,
          release_intent_id: c.releaseIntentId,
          environment: c.environment,
          user_id: vote.userId,
          username: vote.username,
          decision: vote.decision,
          previous_decision: eb.selectFrom("previous").select("decision"),
          decision_kind: vote.decisionKind,
          comment: vote.comment ?? null,
          decided_at: vote.decidedAt,
        }))
        .returning("seq"),
    )
    .selectNoFrom((eb) => [
      eb.selectFrom("previous").select("decision").as("previous_decision"),
      eb.selectFrom("upserted").select("user_id").as("upserted"),
      eb.selectFrom("logged").select("seq").as("logged"),
      sql<VoteJson[] | null>`(
        select json_agg(
                 json_build_array(v.user_id, v.username, v.decision, v.decision_kind, v.decided_at, v.comment)
                 order by v.first_cast_seq)
        from (
          select user_id, username, decision, decision_kind, decided_at, comment, first_cast_seq
          from approval_votes
          where release_intent_id = ${c.releaseIntentId}::uuid and environment = ${c.environment}
            and user_id <> ${vote.userId}
          union all
          select user_id, username, decision, decision_kind, decided_at, comment, first_cast_seq from upserted
        ) v)`.as("votes"),
    ])
    .executeTakeFirstOrThrow();
  if (row.upserted === null || row.logged === null) throw new Error("vote upsert or history insert wrote no row");
  return {
    ...(row.previous_decision !== null ? { previous: row.previous_decision as Decision } : {}),
    votes: votesFromJson(row.votes),
  };
}

export interface HistoryEntry {
  readonly sequence: bigint;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly vote: Vote;
  readonly previousDecision?: Decision;
}

export interface HistoryQuery {
  readonly project: ProjectRef;
  readonly releaseIntentId?: string;
  readonly environment?: string;
  /** Return entries with a sequence greater than this. */
  readonly afterSequence: bigint;
  readonly limit: number;
}

/** History entries of a project, oldest first (keyset paging on the sequence). */
export async function listHistory(db: Db, q: HistoryQuery): Promise<HistoryEntry[]> {
  let query = db
    .selectFrom("approval_history")
    .selectAll()
    .where("organisation", "=", q.project.organisation)
    .where("project", "=", q.project.project)
    .where("seq", ">", q.afterSequence.toString());
  if (q.releaseIntentId !== undefined) query = query.where("release_intent_id", "=", q.releaseIntentId);
  if (q.environment !== undefined) query = query.where("environment", "=", q.environment);
  const rows = await query.orderBy("seq").limit(q.limit).execute();
  return rows.map((r) => ({
    sequence: BigInt(r.seq),
    releaseIntentId: r.release_intent_id,
    environment: r.environment,
    vote: toVote(r),
    ...(r.previous_decision !== null ? { previousDecision: r.previous_decision as Decision } : {}),
  }));
}
