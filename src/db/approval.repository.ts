import { type Kysely, sql, type Transaction } from "kysely";
import { type BreakGlassJson, type BreakGlassMark, breakGlassFromJson } from "../approval/break-glass-mark.js";
import type { Decision, DecisionKind, Vote } from "../approval/vote.js";
import { parseRole } from "../auth/roles.js";
import type { ProjectRef } from "../policy/policy.js";
import type { ApprovalRequest } from "../requests/request-state.js";
import { findNewestRequest, newestRequestIdSql, newestRequestJsonSql, requestFromJson } from "./approval-request.repository.js";
import { findBreakGlass } from "./break-glass.repository.js";
import type { OutboxInsert } from "./outbox.repository.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/**
 * Current votes for an intent in one environment, in the order first cast.
 * `requestId`: only the votes cast on that request (a string), only those
 * cast before any request (null), or all (undefined).
 */
export async function listCurrentVotes(
  db: Db,
  releaseIntentId: string,
  environment: string,
  requestId?: string | null,
): Promise<Vote[]> {
  let q = db
    .selectFrom("approval_votes")
    .select(["user_id", "username", "decision", "decision_kind", "decided_at", "comment", "voter_idp_groups", "voter_token_role"])
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment);
  if (requestId === null) q = q.where("request_id", "is", null);
  else if (requestId !== undefined) q = q.where("request_id", "=", requestId);
  const rows = await q.orderBy("first_cast_seq").execute();
  return rows.map(toVote);
}

/**
 * The first request of an intent and environment adopts the votes cast
 * before requests existed (request_id NULL), so they keep counting.
 */
export async function adoptLegacyVotes(db: Db, releaseIntentId: string, environment: string, requestId: string): Promise<void> {
  await db
    .updateTable("approval_votes")
    .set({ request_id: requestId })
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment)
    .where("request_id", "is", null)
    .execute();
}

interface VoteColumns {
  user_id: string;
  username: string;
  decision: string;
  decision_kind: string;
  decided_at: Date;
  comment: string | null;
  voter_idp_groups: string[] | null;
  voter_token_role: string | null;
}

/** The voter facts a vote carries (absent on votes from before approval rules). */
function voterFacts(idpGroups: unknown, tokenRole: string | null): Pick<Vote, "idpGroups" | "tokenRole"> {
  const role = parseRole(tokenRole);
  const groups = Array.isArray(idpGroups) ? idpGroups.filter((g): g is string => typeof g === "string") : undefined;
  return { ...(groups !== undefined ? { idpGroups: groups } : {}), ...(role !== undefined ? { tokenRole: role } : {}) };
}

function toVote(r: VoteColumns): Vote {
  return {
    userId: r.user_id,
    username: r.username,
    decision: r.decision as Decision,
    decisionKind: r.decision_kind as DecisionKind,
    decidedAt: r.decided_at,
    ...(r.comment !== null ? { comment: r.comment } : {}),
    ...voterFacts(r.voter_idp_groups, r.voter_token_role),
  };
}

/**
 * A vote as `json_build_array(user_id, username, decision, decision_kind,
 * decided_at, comment, voter_idp_groups, voter_token_role)` (VOTE_JSON_COLUMNS).
 */
export type VoteJson = [string, string, string, string, string, string | null, string[] | null, string | null];

/** The columns of VoteJson, for `json_build_array(${VOTE_JSON_COLUMNS})` over `approval_votes v`. */
export const VOTE_JSON_COLUMNS = sql.raw(
  "v.user_id, v.username, v.decision, v.decision_kind, v.decided_at, v.comment, v.voter_idp_groups, v.voter_token_role",
);

/** Maps `json_agg` of VoteJson arrays (null when there were none) to votes; timestamps arrive as ISO strings. */
export function votesFromJson(rows: readonly VoteJson[] | null | undefined): Vote[] {
  return (rows ?? []).map(([userId, username, decision, decisionKind, decidedAt, comment, idpGroups, tokenRole]) => ({
    userId,
    username,
    decision: decision as Decision,
    decisionKind: decisionKind as DecisionKind,
    decidedAt: new Date(decidedAt),
    ...(comment !== null ? { comment } : {}),
    ...voterFacts(idpGroups, tokenRole),
  }));
}

/**
 * What a vote is decided on: the intent's author, its vote version (bumped by
 * every vote, see `writeVote`) and the current votes in one environment.
 */
export interface VoteBasis {
  readonly authorUserId: string;
  /** Who registered the intent, and whether a person (`user`) or a pipeline (`service`). */
  readonly registeredByUserId: string;
  readonly registeredByActorType: string;
  readonly version: string;
  /** Current votes in the environment that count: those of the newest request (before any request: those cast then). */
  readonly votes: Vote[];
  /** The newest break-glass on the intent in the environment, if any. */
  readonly breakGlass?: BreakGlassMark;
  /** The newest approval request of the intent in the environment, if any. */
  readonly request?: ApprovalRequest;
}

/**
 * The vote basis in one statement (one snapshot), without locks; undefined
 * when the intent is not in `project`. Pair with `writeVote`, which writes
 * only if no other vote on the intent committed since.
 */
export async function readVoteBasis(
  db: Db,
  project: ProjectRef,
  releaseIntentId: string,
  environment: string,
): Promise<VoteBasis | undefined> {
  const row = await db
    .selectFrom("release_intents as i")
    .select([
      "i.author_user_id",
      "i.registered_by_user_id",
      "i.registered_by_actor_type",
      sql<string>`i.vote_version::text`.as("version"),
      sql<VoteJson[] | null>`(
        select json_agg(
                 json_build_array(${VOTE_JSON_COLUMNS})
                 order by v.first_cast_seq)
        from approval_votes v
        where v.release_intent_id = i.id and v.environment = ${environment}
          and v.request_id is not distinct from ${newestRequestIdSql(sql`i.id`, environment)})`.as("votes"),
      sql<unknown>`${newestRequestJsonSql(sql`i.id`, environment)}`.as("request"),
      sql<BreakGlassJson | null>`(
        select json_build_array(b.user_id, b.username, b.reason, b.recorded_at)
        from break_glass b
        where b.release_intent_id = i.id and b.environment = ${environment}
        order by b.seq desc
        limit 1)`.as("break_glass"),
    ])
    .where("i.id", "=", releaseIntentId)
    .where("i.organisation", "=", project.organisation)
    .where("i.project", "=", project.project)
    .executeTakeFirst();
  return row === undefined
    ? undefined
    : {
        authorUserId: row.author_user_id,
        registeredByUserId: row.registered_by_user_id,
        registeredByActorType: row.registered_by_actor_type,
        version: row.version,
        votes: votesFromJson(row.votes),
        breakGlass: breakGlassFromJson(row.break_glass),
        request: requestFromJson(row.request),
      };
}

/**
 * The vote basis under the intent row lock, held until the transaction ends:
 * every vote on the intent either committed before (and is in `votes`) or
 * waits for this one (and every break-glass, which bumps the version too).
 * Statements after the lock on purpose: the votes are read after the
 * lock is granted, so they are not from a snapshot older than the lock.
 * `FOR NO KEY UPDATE` does not block the foreign-key checks of deployments
 * and history rows that reference the intent.
 */
export async function lockVoteBasis(
  trx: Transaction<DB>,
  project: ProjectRef,
  releaseIntentId: string,
  environment: string,
): Promise<VoteBasis | undefined> {
  const row = await trx
    .selectFrom("release_intents")
    .select([
      "author_user_id",
      "registered_by_user_id",
      "registered_by_actor_type",
      sql<string>`vote_version::text`.as("version"),
    ])
    .where("id", "=", releaseIntentId)
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .forNoKeyUpdate()
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const request = await findNewestRequest(trx, releaseIntentId, environment);
  return {
    authorUserId: row.author_user_id,
    registeredByUserId: row.registered_by_user_id,
    registeredByActorType: row.registered_by_actor_type,
    version: row.version,
    votes: await listCurrentVotes(trx, releaseIntentId, environment, request?.id ?? null),
    breakGlass: await findBreakGlass(trx, releaseIntentId, environment),
    ...(request !== undefined ? { request } : {}),
  };
}

/** The intent's vote version now (under its row lock: after this transaction's own transitions). */
export async function currentVoteVersion(trx: Transaction<DB>, releaseIntentId: string): Promise<string> {
  const row = await trx
    .selectFrom("release_intents")
    .select(sql<string>`vote_version::text`.as("version"))
    .where("id", "=", releaseIntentId)
    .executeTakeFirstOrThrow();
  return row.version;
}

/** A vote to write, decided on the basis whose version it names. */
export interface VoteWrite {
  readonly project: ProjectRef;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly vote: Vote;
  /** The voter's decision before this vote (history), from the basis. */
  readonly previous?: Decision;
  /** `VoteBasis.version` the vote was decided on. */
  readonly basisVersion: string;
  /** The approval request the vote is cast on. */
  readonly requestId?: string;
  /** The outbox row: its event, the event's JetStream subject, and the NOTIFY channel and payload. */
  readonly outbox: OutboxInsert;
}

/**
 * Writes the vote (upsert, keeping the order it was first cast in), its
 * history row and its outbox event, and NOTIFYs listeners on commit, in one
 * statement, only if the intent's vote version is still `basisVersion`,
 * which it bumps. Returns false, having written nothing, when another vote
 * on the intent committed since the basis was read (the caller decides
 * again on a fresh basis).
 *
 * Why this is safe: every vote bumps the version in the statement that writes
 * it, and the UPDATE holds the intent row lock until commit; a concurrent
 * bump makes this UPDATE re-check the row's newest version (READ COMMITTED)
 * and match nothing, and every other part of the statement inserts only
 * `from bumped`. Postgres runs each data-modifying CTE exactly once.
 */
export async function writeVote(db: Db, w: VoteWrite): Promise<boolean> {
  const { vote, outbox } = w;
  const at = vote.decidedAt.toISOString();
  const comment = vote.comment ?? null;
  const idpGroups = vote.idpGroups === undefined ? null : JSON.stringify(vote.idpGroups);
  const tokenRole = vote.tokenRole ?? null;
  const { rows } = await sql<{ notified: string }>`
    with bumped as (
      update release_intents set vote_version = vote_version + 1
      where id = ${w.releaseIntentId}::uuid and vote_version = ${w.basisVersion}::bigint
      returning id
    ), upserted as (
      insert into approval_votes
        (release_intent_id, environment, user_id, username, decision, decision_kind, comment, first_cast_at, decided_at,
         voter_idp_groups, voter_token_role, request_id)
      select id, ${w.environment}, ${vote.userId}, ${vote.username}, ${vote.decision}, ${vote.decisionKind},
             ${comment}::text, ${at}::timestamptz, ${at}::timestamptz, ${idpGroups}::jsonb, ${tokenRole}::text,
             ${w.requestId ?? null}::uuid
      from bumped
      on conflict (release_intent_id, environment, user_id) do update set
        username = excluded.username, decision = excluded.decision, decision_kind = excluded.decision_kind,
        comment = excluded.comment, decided_at = excluded.decided_at,
        voter_idp_groups = excluded.voter_idp_groups, voter_token_role = excluded.voter_token_role,
        request_id = excluded.request_id
      returning 1
    ), logged as (
      insert into approval_history
        (organisation, project, release_intent_id, environment, user_id, username, decision, previous_decision,
         decision_kind, comment, decided_at, voter_idp_groups, voter_token_role)
      select ${w.project.organisation}, ${w.project.project}, id, ${w.environment}, ${vote.userId}, ${vote.username},
             ${vote.decision}, ${w.previous ?? null}::text, ${vote.decisionKind}, ${comment}::text, ${at}::timestamptz,
             ${idpGroups}::jsonb, ${tokenRole}::text
      from bumped
      returning 1
    ), queued as (
      insert into outbox (event_id, release_intent_id, subject, payload, created_at)
      select ${outbox.eventId}::uuid, id, ${outbox.subject}, ${outbox.json}::jsonb, ${at}::timestamptz
      from bumped
      returning 1
    )
    select pg_notify(${outbox.channel}, ${outbox.notification})::text as notified
    from queued, upserted, logged`.execute(db);
  return rows.length === 1;
}

export interface HistoryEntry {
  readonly sequence: bigint;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly vote: Vote;
  readonly previousDecision?: Decision;
  /** The intent's author and registrant (the four-eyes parties), from the intent. */
  readonly intentAuthorUserId: string;
  readonly intentRegisteredByUserId: string;
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
    .selectFrom("approval_history as h")
    .innerJoin("release_intents as i", "i.id", "h.release_intent_id")
    .selectAll("h")
    .select(["i.author_user_id as intent_author", "i.registered_by_user_id as intent_registrant"])
    .where("h.organisation", "=", q.project.organisation)
    .where("h.project", "=", q.project.project)
    .where("h.seq", ">", q.afterSequence.toString());
  if (q.releaseIntentId !== undefined) query = query.where("h.release_intent_id", "=", q.releaseIntentId);
  if (q.environment !== undefined) query = query.where("h.environment", "=", q.environment);
  const rows = await query.orderBy("h.seq").limit(q.limit).execute();
  return rows.map((r) => ({
    sequence: BigInt(r.seq),
    releaseIntentId: r.release_intent_id,
    environment: r.environment,
    vote: toVote(r),
    ...(r.previous_decision !== null ? { previousDecision: r.previous_decision as Decision } : {}),
    intentAuthorUserId: r.intent_author,
    intentRegisteredByUserId: r.intent_registrant,
  }));
}
