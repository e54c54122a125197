import { randomUUID } from "node:crypto";
import { type Kysely, type RawBuilder, type Selectable, sql, type Transaction } from "kysely";
import { type ApprovalDecidedEvent, requestEventKind } from "../approval/event.js";
import type { ProjectRef } from "../policy/policy.js";
import type { ApprovalRequest, FinalState, OpenedBy } from "../requests/request-state.js";
import { expiryReason, SYSTEM_ACTOR } from "../requests/request-state.js";
import { approvalSubject } from "../signal/subject.js";
import { outboxInsertFor } from "./outbox.repository.js";
import type { ApprovalRequestsTable, DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

function toRequest(r: Selectable<ApprovalRequestsTable>): ApprovalRequest {
  return {
    id: r.id,
    organisation: r.organisation,
    project: r.project,
    releaseIntentId: r.release_intent_id,
    environment: r.environment,
    state: r.state,
    requestedByUserId: r.requested_by_user_id,
    requestedByActorType: r.requested_by_actor_type,
    openedBy: r.opened_by,
    requestedAt: new Date(r.requested_at),
    ...(r.expires_at !== null ? { expiresAt: new Date(r.expires_at) } : {}),
    ...(r.decided_at !== null ? { decidedAt: new Date(r.decided_at) } : {}),
    ...(r.decided_by !== null ? { decidedBy: r.decided_by } : {}),
    ...(r.decision_reason !== null ? { reason: r.decision_reason } : {}),
    ...(r.superseded_by !== null ? { supersededBy: r.superseded_by } : {}),
  };
}

/** The id of the newest request of `intent` (an SQL uuid expression) in `environment`: a scalar subquery (index approval_requests_intent_env). */
export function newestRequestIdSql(intent: RawBuilder<unknown>, environment: string): RawBuilder<string | null> {
  return sql<string | null>`(select r.id from approval_requests r
     where r.release_intent_id = ${intent} and r.environment = ${environment}
     order by r.seq desc limit 1)`;
}

/** The newest request of `intent` in `environment` as one JSON object (null when none): read with `requestFromJson`. */
export function newestRequestJsonSql(intent: RawBuilder<unknown>, environment: string): RawBuilder<unknown> {
  return sql`(select row_to_json(r) from approval_requests r
     where r.release_intent_id = ${intent} and r.environment = ${environment}
     order by r.seq desc limit 1)`;
}

/** A request from `row_to_json` (timestamps as ISO strings); undefined for null. */
export function requestFromJson(json: unknown): ApprovalRequest | undefined {
  if (json === null || json === undefined) return undefined;
  const r = (typeof json === "string" ? JSON.parse(json) : json) as Selectable<ApprovalRequestsTable>;
  return toRequest(r);
}

/**
 * Takes the intent row lock (FOR NO KEY UPDATE) every change of its
 * requests and votes holds: transitions, votes and break-glass serialise per
 * intent. False when the intent does not exist.
 */
export async function lockIntent(trx: Transaction<DB>, releaseIntentId: string): Promise<boolean> {
  const row = await trx
    .selectFrom("release_intents")
    .select("id")
    .where("id", "=", releaseIntentId)
    .forNoKeyUpdate()
    .executeTakeFirst();
  return row !== undefined;
}

/** The newest request of an intent and environment (index approval_requests_intent_env). */
export async function findNewestRequest(
  db: Db,
  releaseIntentId: string,
  environment: string,
): Promise<ApprovalRequest | undefined> {
  const row = await db
    .selectFrom("approval_requests")
    .selectAll()
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment)
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? undefined : toRequest(row);
}

/** Every request of an intent and environment, newest first (index approval_requests_intent_env). */
export async function listRequests(db: Db, releaseIntentId: string, environment: string, limit = 100): Promise<ApprovalRequest[]> {
  const rows = await db
    .selectFrom("approval_requests")
    .selectAll()
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment)
    .orderBy("seq", "desc")
    .limit(limit)
    .execute();
  return rows.map(toRequest);
}

/** Who caused a transition, as history rows and events name them. */
export interface Actor {
  readonly userId: string;
  readonly username: string;
}

const SYSTEM: Actor = { userId: SYSTEM_ACTOR, username: SYSTEM_ACTOR };

/** Vote counts a lifecycle event carries (0/0 where the transition is not a count: expiry, cancel, supersede). */
export interface EventCounts {
  readonly currentApprovals: number;
  readonly requiredApprovals: number;
}

/** The lifecycle event of `r` (in its new state), caused by `actor`. */
function lifecycleEvent(r: ApprovalRequest, actor: Actor, at: Date, counts?: EventCounts): ApprovalDecidedEvent {
  return {
    event_id: randomUUID(),
    kind: requestEventKind(r.state),
    organisation: r.organisation,
    project: r.project,
    environment: r.environment,
    release_intent_id: r.releaseIntentId,
    voter_user_id: actor.userId,
    voter_username: actor.username,
    decision: r.state,
    decision_kind: `request_${r.state}`,
    current_approvals: counts?.currentApprovals ?? 0,
    required_approvals: counts?.requiredApprovals ?? 0,
    passed: r.state === "approved",
    decided_at: at.toISOString(),
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    request_id: r.id,
    request_state: r.state,
    ...(r.supersededBy !== undefined ? { superseded_by: r.supersededBy } : {}),
  };
}

/**
 * Writes a transition's history row (decision = the new state, decision_kind
 * `request_<state>`, comment = the reason) and its outbox event, and NOTIFYs
 * on commit. Returns the event id.
 */
async function recordTransition(
  trx: Transaction<DB>,
  subjectPrefix: string,
  r: ApprovalRequest,
  actor: Actor,
  at: Date,
  counts?: EventCounts,
): Promise<string> {
  const event = lifecycleEvent(r, actor, at, counts);
  const outbox = outboxInsertFor(event, approvalSubject(subjectPrefix, r.organisation, r.project, r.environment));
  const iso = at.toISOString();
  // A transition changes what votes are decided on: an optimistic vote read before it must decide again.
  await sql`update release_intents set vote_version = vote_version + 1 where id = ${r.releaseIntentId}::uuid`.execute(trx);
  await sql`
    insert into approval_history
      (organisation, project, release_intent_id, environment, user_id, username, decision, previous_decision,
       decision_kind, comment, decided_at)
    values (${r.organisation}, ${r.project}, ${r.releaseIntentId}::uuid, ${r.environment}, ${actor.userId},
            ${actor.username}, ${r.state}, ${r.state === "pending" ? null : "pending"}::text, ${`request_${r.state}`},
            ${r.reason ?? null}::text, ${iso}::timestamptz)`.execute(trx);
  await sql`
    insert into outbox (event_id, release_intent_id, subject, payload, created_at)
    values (${outbox.eventId}::uuid, ${r.releaseIntentId}::uuid, ${outbox.subject}, ${outbox.json}::jsonb, ${iso}::timestamptz)`.execute(
    trx,
  );
  await sql`select pg_notify(${outbox.channel}, ${outbox.notification})`.execute(trx);
  return event.event_id;
}

/** A request to open (RequestApproval, an evaluation or a first vote). */
export interface RequestOpen {
  readonly project: ProjectRef;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly requestedBy: Actor & { readonly actorType: string };
  readonly openedBy: OpenedBy;
  readonly requestedAt: Date;
  readonly expiresAt?: Date;
  readonly subjectPrefix: string;
}

/**
 * Opens a pending request unless one is pending (the partial unique index
 * approval_requests_one_pending decides between concurrent openers: ON
 * CONFLICT DO NOTHING, then read the winner). A new request writes its
 * history row and `approval.requested` event. Returns the pending request
 * and whether this call created it.
 */
export async function openPendingRequest(
  trx: Transaction<DB>,
  o: RequestOpen,
): Promise<{ request: ApprovalRequest; created: boolean }> {
  const at = o.requestedAt;
  const inserted = await trx
    .insertInto("approval_requests")
    .values({
      id: randomUUID(),
      organisation: o.project.organisation,
      project: o.project.project,
      release_intent_id: o.releaseIntentId,
      environment: o.environment,
      state: "pending",
      requested_by_user_id: o.requestedBy.userId,
      requested_by_actor_type: o.requestedBy.actorType,
      opened_by: o.openedBy,
      requested_at: at,
      expires_at: o.expiresAt ?? null,
      decided_at: null,
      decided_by: null,
      decision_reason: null,
      superseded_by: null,
      updated_at: at,
    })
    // The predicate is a literal: a bound parameter does not prove the partial index's WHERE, so
    // a prepared statement (src/db/auto-prepare.ts) would find no arbiter index.
    .onConflict((oc) =>
      oc
        .columns(["release_intent_id", "environment"])
        .where(sql<boolean>`state = 'pending'`)
        .doNothing(),
    )
    .returningAll()
    .executeTakeFirst();
  if (inserted !== undefined) {
    const request = toRequest(inserted);
    await recordTransition(trx, o.subjectPrefix, request, o.requestedBy, at);
    return { request, created: true };
  }
  const pending = await trx
    .selectFrom("approval_requests")
    .selectAll()
    .where("release_intent_id", "=", o.releaseIntentId)
    .where("environment", "=", o.environment)
    .where("state", "=", "pending")
    .executeTakeFirst();
  // The conflicting row committed before our insert saw it; it is still pending or it would not conflict.
  if (pending === undefined) throw new Error("pending approval request vanished after a unique conflict");
  return { request: toRequest(pending), created: false };
}

/** A transition of a pending request to a final state. */
export interface RequestFinish {
  readonly id: string;
  readonly to: FinalState;
  readonly actor: Actor;
  readonly decidedAt: Date;
  readonly reason?: string;
  readonly supersededBy?: string;
  readonly counts?: EventCounts;
  readonly subjectPrefix: string;
}

/**
 * Moves the request from pending to `to` with its history row and event, in
 * the caller's transaction. Returns undefined, having written nothing, when
 * it is not pending any more (someone else decided it first).
 */
export async function finishRequest(trx: Transaction<DB>, f: RequestFinish): Promise<ApprovalRequest | undefined> {
  const row = await trx
    .updateTable("approval_requests")
    .set({
      state: f.to,
      decided_at: f.decidedAt,
      decided_by: f.actor.userId,
      decision_reason: f.reason ?? null,
      superseded_by: f.supersededBy ?? null,
      updated_at: f.decidedAt,
    })
    .where("id", "=", f.id)
    .where("state", "=", "pending")
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const request = toRequest(row);
  await recordTransition(trx, f.subjectPrefix, request, f.actor, f.decidedAt, f.counts);
  return request;
}

/** What supersedes pending requests (the supersede policy's use case). */
export interface SupersedeCommand {
  readonly organisation: string;
  readonly project: string;
  readonly environment: string;
  /** The older intents whose pending request in `environment` ends. */
  readonly releaseIntentIds: readonly string[];
  /** The newer intent. */
  readonly supersededBy: string;
  readonly decidedAt: Date;
  /** e.g. "superseded by <id> (policy 'one-pending')". */
  readonly reason: string;
  readonly subjectPrefix: string;
}

/**
 * Supersedes the pending requests of `releaseIntentIds` in one environment
 * (decided_by `system`), each with its history row and `approval.superseded`
 * event, in the caller's transaction. Rows another transaction is deciding
 * are waited for (FOR UPDATE), so none is decided twice. Returns the
 * requests it superseded.
 */
export async function supersedePendingRequests(trx: Transaction<DB>, c: SupersedeCommand): Promise<ApprovalRequest[]> {
  if (c.releaseIntentIds.length === 0) return [];
  const pending = await trx
    .selectFrom("approval_requests")
    .select("id")
    .where("organisation", "=", c.organisation)
    .where("project", "=", c.project)
    .where("environment", "=", c.environment)
    .where("release_intent_id", "in", c.releaseIntentIds)
    .where("state", "=", "pending")
    .orderBy("requested_at")
    .forUpdate()
    .execute();
  const done: ApprovalRequest[] = [];
  for (const { id } of pending) {
    const r = await finishRequest(trx, {
      id,
      to: "superseded",
      actor: SYSTEM,
      decidedAt: c.decidedAt,
      reason: c.reason,
      supersededBy: c.supersededBy,
      subjectPrefix: c.subjectPrefix,
    });
    if (r !== undefined) done.push(r);
  }
  return done;
}

/**
 * The reaper's step: expires up to `limit` pending requests due at `now`,
 * oldest expiry first, each with its history row and `approval.expired`
 * event (decided_by `system`, decided_at its expires_at), in the caller's
 * transaction. Rows another replica is expiring are skipped (SKIP LOCKED),
 * so no request is expired twice; so are requests whose intent another
 * transaction holds (the next tick takes them). Index approval_requests_pending_expiry.
 */
export async function expireDueRequests(
  trx: Transaction<DB>,
  now: Date,
  limit: number,
  subjectPrefix: string,
): Promise<ApprovalRequest[]> {
  const { rows } = await sql<Selectable<ApprovalRequestsTable>>`
    update approval_requests r
       set state = 'expired', decided_at = r.expires_at, decided_by = ${SYSTEM_ACTOR},
           decision_reason = 'request timeout: no decision by ' || to_char(r.expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           updated_at = ${now.toISOString()}::timestamptz
     where r.id in (
       select d.id from approval_requests d join release_intents i on i.id = d.release_intent_id
        where d.state = 'pending' and d.expires_at is not null and d.expires_at <= ${now.toISOString()}::timestamptz
        order by d.expires_at
        limit ${limit}
        -- The intent row too: a request whose intent a vote or cancel holds waits for the next
        -- tick instead of deadlocking with it (they lock the intent, then the request).
        for no key update of d, i skip locked)
       and r.state = 'pending'
    returning r.*`.execute(trx);
  const expired = rows.map(toRequest);
  for (const r of expired) await recordTransition(trx, subjectPrefix, r, SYSTEM, r.decidedAt ?? now);
  return expired;
}

/** Expires one due pending request in the caller's transaction (evaluation and votes, before the reaper). */
export async function expireRequest(trx: Transaction<DB>, r: ApprovalRequest, subjectPrefix: string): Promise<ApprovalRequest | undefined> {
  if (r.expiresAt === undefined) return undefined;
  return finishRequest(trx, {
    id: r.id,
    to: "expired",
    actor: SYSTEM,
    decidedAt: r.expiresAt,
    reason: expiryReason(r.expiresAt),
    subjectPrefix,
  });
}

/**
 * Pending requests per organisation, project and environment, with the age
 * of the oldest in seconds on the database's clock (metrics). Exact: reads
 * the partial index approval_requests_pending_org, pending rows only.
 */
export async function pendingRequestsByEnvironment(
  db: Db,
): Promise<{ organisation: string; project: string; environment: string; count: number; oldestAgeSeconds: number }[]> {
  const { rows } = await sql<{ organisation: string; project: string; environment: string; n: string; age: number | null }>`
    select organisation, project, environment, count(*) as n,
           extract(epoch from (now() - min(requested_at)))::float8 as age
      from approval_requests
     where state = 'pending'
     group by organisation, project, environment`.execute(db);
  return rows.map((r) => ({
    organisation: r.organisation,
    project: r.project,
    environment: r.environment,
    count: Number(r.n),
    oldestAgeSeconds: Math.max(0, r.age ?? 0),
  }));
}
