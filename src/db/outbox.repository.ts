import { type Kysely, sql, type Transaction } from "kysely";
import type { ApprovalDecidedEvent } from "../approval/event.js";
import type { ProjectRef } from "../policy/policy.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/**
 * NOTIFY channel raised by every outbox insert; the payload is the event
 * JSON, or only the event id when the JSON would not fit (see
 * `findOutboxEvent`). Delivered on commit, to every replica: wakes relays
 * and feeds WatchApprovalEvents streams.
 */
export const OUTBOX_CHANNEL = "releasegate_outbox";

/** NOTIFY payloads must stay under 8000 bytes; larger events notify their id. */
const NOTIFY_PAYLOAD_MAX_BYTES = 7_900;

/** An unpublished outbox row. */
export interface OutboxRow {
  readonly seq: string;
  readonly eventId: string;
  readonly releaseIntentId: string;
  /** JetStream subject, computed when the event was written. */
  readonly subject: string;
  readonly event: ApprovalDecidedEvent;
}

/** An outbox row to insert (with the statement that writes its vote, `writeVote`). */
export interface OutboxInsert {
  readonly eventId: string;
  /** JetStream subject the relay publishes to. */
  readonly subject: string;
  /** The event as JSON (the row's payload). */
  readonly json: string;
  /** NOTIFY channel and payload, delivered on commit (OUTBOX_CHANNEL). */
  readonly channel: string;
  readonly notification: string;
}

/** The outbox row of `event`: its JSON, and what to NOTIFY (the JSON, or the id when too large). */
export function outboxInsertFor(event: ApprovalDecidedEvent, subject: string): OutboxInsert {
  const json = JSON.stringify(event);
  // Usernames come from tokens and are unbounded: a huge one must not fail the vote.
  const notification = Buffer.byteLength(json) <= NOTIFY_PAYLOAD_MAX_BYTES ? json : event.event_id;
  return { eventId: event.event_id, subject, json, channel: OUTBOX_CHANNEL, notification };
}

/** What one relay claims in one statement. */
export interface ClaimRequest {
  /** Most rows to claim. */
  readonly limit: number;
  /** How long the claim keeps other relays off the rows, in ms (database clock). */
  readonly leaseMs: number;
  /** This claim's identity (a fresh UUID per claim): marking and releasing only touch rows that still carry it. */
  readonly token: string;
}

/**
 * Leases up to `limit` unpublished rows, oldest first, to the claim
 * `token`: sets their `claimed_until` to the database's now plus `leaseMs`
 * and returns them. One short statement, committed at once: no lock
 * outlives it, and the caller publishes with no transaction open. Rows under
 * another claim's unexpired lease are not taken, and neither are rows a
 * concurrent claim statement is taking (SKIP LOCKED). To keep per-intent
 * order across relays, a row is never claimed while its intent has an older
 * unpublished row outside this claim (leased to or being claimed by someone
 * else): the row waits until that one is published or its lease runs out.
 */
export async function claimUnpublished(db: Db, claim: ClaimRequest): Promise<OutboxRow[]> {
  const { rows } = await sql<{
    seq: string | number;
    event_id: string;
    release_intent_id: string;
    subject: string;
    payload: unknown;
  }>`
    with candidates as (
      select seq, release_intent_id from outbox
      where published_at is null and (claimed_until is null or claimed_until <= now())
      order by seq
      limit ${claim.limit}
      for update skip locked
    ),
    blocked as (
      select o.release_intent_id, min(o.seq) as first_unclaimed from outbox o
      where o.published_at is null
        and o.release_intent_id in (select release_intent_id from candidates)
        and o.seq < (select max(seq) from candidates)
        and not exists (select 1 from candidates k where k.seq = o.seq)
      group by o.release_intent_id
    ),
    chosen as (
      select c.seq from candidates c left join blocked b on b.release_intent_id = c.release_intent_id
      where b.first_unclaimed is null or c.seq < b.first_unclaimed
    )
    update outbox o
       set claimed_until = now() + make_interval(secs => ${claim.leaseMs / 1000}::float8),
           claim_token = ${claim.token}::uuid
      from chosen
     where o.seq = chosen.seq
    returning o.seq, o.event_id, o.release_intent_id, o.subject, o.payload`.execute(db);
  return rows
    .map((r) => ({
      seq: String(r.seq),
      eventId: r.event_id,
      releaseIntentId: r.release_intent_id,
      subject: r.subject,
      event: (typeof r.payload === "string" ? JSON.parse(r.payload) : r.payload) as unknown as ApprovalDecidedEvent,
    }))
    .sort((a, b) => compareSeq(a.seq, b.seq));
}

/** Orders decimal bigint strings numerically. */
function compareSeq(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Marks the rows `seqs` published at `at`, those that still carry the claim
 * `token` (a row whose lease ran out and that another relay claimed is that
 * relay's to mark). Returns how many rows it marked.
 */
export async function markPublished(db: Db, token: string, seqs: readonly string[], at: Date): Promise<number> {
  if (seqs.length === 0) return 0;
  const result = await sql`
    update outbox set published_at = ${at.toISOString()}::timestamptz
     where claim_token = ${token}::uuid and published_at is null
       and seq in (${sql.join(seqs.map((seq) => sql`${seq}::bigint`))})`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * Ends the lease of the claim's rows that were not published (a failed or
 * unfinished publish), so that the next claim, by any relay, may take them
 * at once instead of when the lease runs out. Returns how many it released.
 */
export async function releaseClaim(db: Db, token: string): Promise<number> {
  const result = await sql`
    update outbox set claimed_until = null
     where claim_token = ${token}::uuid and published_at is null`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** Number of events waiting to be published (for metrics and readiness). */
export async function outboxDepth(db: Db): Promise<number> {
  const row = await db
    .selectFrom("outbox")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("published_at", "is", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The event an outbox row holds (for notifications that carried only its id). */
export async function findOutboxEvent(db: Db, eventId: string): Promise<ApprovalDecidedEvent | undefined> {
  const row = await db.selectFrom("outbox").select("payload").where("event_id", "=", eventId).executeTakeFirst();
  if (row === undefined) return undefined;
  return (typeof row.payload === "string" ? JSON.parse(row.payload) : row.payload) as unknown as ApprovalDecidedEvent;
}

/** What a resuming WatchApprovalEvents stream replays (outboxReplay). */
export interface ReplayQuery {
  readonly project: ProjectRef;
  /** Only this target environment's events, when set. */
  readonly environment?: string;
  /** The last event the client received. */
  readonly afterEventId: string;
  /**
   * Events created up to this long before that one are replayed too: an
   * outbox row's time is its transaction's start, and a transaction that
   * started earlier may have committed after it.
   */
  readonly overlapMs: number;
  readonly limit: number;
}

const payloadText = (key: "organisation" | "project" | "environment") => sql<string>`payload->>${sql.lit(key)}`;

/**
 * The project's events created from `overlapMs` before the cursor event on,
 * oldest first, without the cursor itself: every event committed after it,
 * and some the client may have had already. Undefined when the cursor is not
 * an outbox event of this project (unknown, another project's, or pruned).
 */
export async function outboxReplay(db: Db, q: ReplayQuery): Promise<ApprovalDecidedEvent[] | undefined> {
  const ofProject = db
    .selectFrom("outbox")
    .where(payloadText("organisation"), "=", q.project.organisation)
    .where(payloadText("project"), "=", q.project.project);
  const cursor = await ofProject.select("created_at").where("event_id", "=", q.afterEventId).executeTakeFirst();
  if (cursor === undefined) return undefined;
  const from = new Date(new Date(cursor.created_at).getTime() - q.overlapMs);
  let replay = ofProject
    .select("payload")
    .where("created_at", ">=", from)
    .where("event_id", "<>", q.afterEventId)
    .orderBy("created_at")
    .orderBy("seq")
    .limit(q.limit);
  if (q.environment !== undefined) replay = replay.where(payloadText("environment"), "=", q.environment);
  const rows = await replay.execute();
  return rows.map(
    (r) => (typeof r.payload === "string" ? JSON.parse(r.payload) : r.payload) as unknown as ApprovalDecidedEvent,
  );
}

/** Deletes rows published before `cutoff`; returns how many. History lives in approval_history. */
export async function deletePublishedBefore(db: Db, cutoff: Date): Promise<number> {
  const result = await db.deleteFrom("outbox").where("published_at", "<", cutoff).executeTakeFirst();
  return Number(result.numDeletedRows);
}
