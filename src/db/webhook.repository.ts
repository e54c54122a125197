import { type Kysely, type Selectable, sql, type Transaction } from "kysely";
import type { ApprovalDecidedEvent } from "../approval/event.js";
import type { DB, WebhookDeliveriesTable, WebhookDeliveryStatusValue, WebhookSubscriptionsTable } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/** A subscription as the API shows it: everything but the secret. */
export interface WebhookSubscription {
  readonly id: string;
  readonly organisation: string;
  readonly project?: string;
  readonly environment?: string;
  readonly url: string;
  readonly eventKinds: readonly string[];
  readonly format: "json" | "slack";
  readonly enabled: boolean;
  readonly createdBy: string;
  readonly createdAt: Date;
}

/** A subscription to insert (with its secret). */
export interface WebhookSubscriptionInsert extends Omit<WebhookSubscription, "enabled"> {
  readonly secret: string;
}

/** A delivery's log entry. */
export interface WebhookDelivery {
  readonly id: string;
  readonly subscriptionId: string;
  readonly eventId: string;
  readonly kind: string;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly status: WebhookDeliveryStatusValue;
  readonly attempts: number;
  readonly lastError?: string;
  readonly lastStatusCode?: number;
  /** Undefined once delivered or dead. */
  readonly nextAttemptAt?: Date;
  readonly createdAt: Date;
  readonly deliveredAt?: Date;
}

// Never select the secret for the API: list the columns it may see.
const SUBSCRIPTION_COLUMNS = [
  "id",
  "organisation",
  "project",
  "environment",
  "url",
  "event_kinds",
  "format",
  "enabled",
  "created_by",
  "created_at",
] as const;

function toSubscription(r: Omit<Selectable<WebhookSubscriptionsTable>, "secret" | "updated_at">): WebhookSubscription {
  return {
    id: r.id,
    organisation: r.organisation,
    project: r.project ?? undefined,
    environment: r.environment ?? undefined,
    url: r.url,
    eventKinds: r.event_kinds,
    format: r.format,
    enabled: r.enabled,
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
  };
}

const isOpen = (s: WebhookDeliveryStatusValue) => s === "pending" || s === "failed_retrying";

function toDelivery(r: Selectable<WebhookDeliveriesTable>): WebhookDelivery {
  return {
    id: String(r.id),
    subscriptionId: r.subscription_id,
    eventId: r.event_id,
    kind: r.kind,
    releaseIntentId: r.release_intent_id,
    environment: r.environment,
    status: r.status,
    attempts: r.attempts,
    lastError: r.last_error ?? undefined,
    lastStatusCode: r.last_status_code ?? undefined,
    nextAttemptAt: isOpen(r.status) ? new Date(r.next_attempt_at) : undefined,
    createdAt: new Date(r.created_at),
    deliveredAt: r.delivered_at === null ? undefined : new Date(r.delivered_at),
  };
}

export async function insertSubscription(db: Db, s: WebhookSubscriptionInsert): Promise<WebhookSubscription> {
  const row = await db
    .insertInto("webhook_subscriptions")
    .values({
      id: s.id,
      organisation: s.organisation,
      project: s.project ?? null,
      environment: s.environment ?? null,
      url: s.url,
      event_kinds: sql<string[]>`${sql.val([...s.eventKinds])}::text[]` as never,
      format: s.format,
      secret: s.secret,
      enabled: true,
      created_by: s.createdBy,
      created_at: s.createdAt,
      updated_at: s.createdAt,
    })
    .returning(SUBSCRIPTION_COLUMNS)
    .executeTakeFirstOrThrow();
  return toSubscription(row);
}

/** The organisation's subscriptions, oldest first (index webhook_subscriptions_org). */
export async function listSubscriptions(db: Db, organisation: string): Promise<WebhookSubscription[]> {
  const rows = await db
    .selectFrom("webhook_subscriptions")
    .select(SUBSCRIPTION_COLUMNS)
    .where("organisation", "=", organisation)
    .orderBy("created_at")
    .orderBy("id")
    .execute();
  return rows.map(toSubscription);
}

export async function findSubscription(db: Db, organisation: string, id: string): Promise<WebhookSubscription | undefined> {
  const row = await db
    .selectFrom("webhook_subscriptions")
    .select(SUBSCRIPTION_COLUMNS)
    .where("id", "=", id)
    .where("organisation", "=", organisation)
    .executeTakeFirst();
  return row === undefined ? undefined : toSubscription(row);
}

/** Enables or disables; undefined when there is no such subscription in the organisation. */
export async function setSubscriptionEnabled(
  db: Db,
  organisation: string,
  id: string,
  enabled: boolean,
  at: Date,
): Promise<WebhookSubscription | undefined> {
  const row = await db
    .updateTable("webhook_subscriptions")
    .set({ enabled, updated_at: at })
    .where("id", "=", id)
    .where("organisation", "=", organisation)
    .returning(SUBSCRIPTION_COLUMNS)
    .executeTakeFirst();
  return row === undefined ? undefined : toSubscription(row);
}

/** Deletes a subscription and (cascade) its deliveries; false when there was none. */
export async function deleteSubscription(db: Db, organisation: string, id: string): Promise<boolean> {
  const r = await db
    .deleteFrom("webhook_subscriptions")
    .where("id", "=", id)
    .where("organisation", "=", organisation)
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** A page of a subscription's deliveries, newest first, before the delivery id `beforeId` (index webhook_deliveries_log). */
export async function listDeliveries(
  db: Db,
  subscriptionId: string,
  page: { readonly beforeId?: string; readonly limit: number },
): Promise<WebhookDelivery[]> {
  let q = db.selectFrom("webhook_deliveries").selectAll().where("subscription_id", "=", subscriptionId);
  if (page.beforeId !== undefined) q = q.where("id", "<", page.beforeId);
  const rows = await q.orderBy("id", "desc").limit(page.limit).execute();
  return rows.map(toDelivery);
}

export async function findDelivery(db: Db, subscriptionId: string, id: string): Promise<WebhookDelivery | undefined> {
  const row = await db
    .selectFrom("webhook_deliveries")
    .selectAll()
    .where("id", "=", id)
    .where("subscription_id", "=", subscriptionId)
    .executeTakeFirst();
  return row === undefined ? undefined : toDelivery(row);
}

/** Makes a dead delivery pending again with no attempts; undefined when it is not dead (or absent). */
export async function redeliverDead(db: Db, subscriptionId: string, id: string): Promise<WebhookDelivery | undefined> {
  const row = await db
    .updateTable("webhook_deliveries")
    .set({
      status: "pending",
      attempts: 0,
      next_attempt_at: sql<Date>`now()`,
      claimed_until: null,
      claim_token: null,
    })
    .where("id", "=", id)
    .where("subscription_id", "=", subscriptionId)
    .where("status", "=", "dead")
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? undefined : toDelivery(row);
}

/** Due rows looked at per row claimed: room to skip those of subscriptions at their lease cap. */
const CLAIM_SCAN_FACTOR = 8;

/** A claimed delivery with what sending it needs. */
export interface ClaimedDelivery {
  readonly id: string;
  readonly eventId: string;
  readonly kind: string;
  readonly attempts: number;
  readonly event: ApprovalDecidedEvent;
  readonly url: string;
  readonly secret: string;
  readonly format: "json" | "slack";
}

/**
 * Leases up to `limit` due deliveries (pending or failed_retrying, next
 * attempt reached, no unexpired lease, subscription enabled) to `token`, in
 * one short statement (database clock), like the outbox relay's claim. A
 * delivery is never claimed while an earlier delivery of the same
 * subscription, release intent and environment is still open (pending or
 * retrying, claimed or not): deliveries of one request arrive in order. No
 * subscription holds more than `perSubscription` unexpired leases (across
 * replicas, counting this claim), so one slow or hanging receiver cannot take
 * every attempt slot. SKIP LOCKED keeps concurrent claims off each other's
 * rows; the lease conditions are checked again on the locked row.
 */
export async function claimDueDeliveries(
  db: Db,
  claim: { readonly limit: number; readonly leaseMs: number; readonly token: string; readonly perSubscription: number },
): Promise<ClaimedDelivery[]> {
  const { rows } = await sql<{
    id: string | number;
    event_id: string;
    kind: string;
    attempts: number;
    payload: unknown;
    url: string;
    secret: string;
    format: "json" | "slack";
  }>`
    with due as (
      select d.id, d.subscription_id, d.next_attempt_at from webhook_deliveries d
      join webhook_subscriptions s on s.id = d.subscription_id and s.enabled
      where d.status in ('pending', 'failed_retrying') and d.next_attempt_at <= now()
        and (d.claimed_until is null or d.claimed_until <= now())
        and not exists (
          select 1 from webhook_deliveries e
          where e.subscription_id = d.subscription_id and e.release_intent_id = d.release_intent_id
            and e.environment = d.environment and e.id < d.id and e.status in ('pending', 'failed_retrying'))
      order by d.next_attempt_at, d.id
      limit ${claim.limit * CLAIM_SCAN_FACTOR}
    ),
    ranked as (
      select due.id, due.next_attempt_at,
             row_number() over (partition by due.subscription_id order by due.next_attempt_at, due.id)
               + (select count(*) from webhook_deliveries a
                   where a.subscription_id = due.subscription_id and a.claimed_until > now()) as slot
      from due
    ),
    chosen as (
      select d.id from webhook_deliveries d join ranked r on r.id = d.id
      where r.slot <= ${claim.perSubscription}
        and d.status in ('pending', 'failed_retrying') and (d.claimed_until is null or d.claimed_until <= now())
      order by r.next_attempt_at, d.id
      limit ${claim.limit}
      for update of d skip locked
    )
    update webhook_deliveries d
       set claimed_until = now() + make_interval(secs => ${claim.leaseMs / 1000}::float8),
           claim_token = ${claim.token}::uuid
      from chosen, webhook_subscriptions s
     where d.id = chosen.id and s.id = d.subscription_id
    returning d.id, d.event_id, d.kind, d.attempts, d.payload, s.url, s.secret, s.format`.execute(db);
  return rows.map((r) => ({
    id: String(r.id),
    eventId: r.event_id,
    kind: r.kind,
    attempts: r.attempts,
    event: (typeof r.payload === "string" ? JSON.parse(r.payload) : r.payload) as ApprovalDecidedEvent,
    url: r.url,
    secret: r.secret,
    format: r.format,
  }));
}

/**
 * Records a 2xx answer for a delivery still under `token`; returns the
 * delivery lag (its row's creation, in the event's transaction, to now, both
 * on the database clock) in seconds, or undefined when the claim was lost.
 */
export async function markDelivered(db: Db, token: string, id: string, statusCode: number): Promise<number | undefined> {
  const { rows } = await sql<{ lag: string | number }>`
    update webhook_deliveries
       set status = 'delivered', attempts = attempts + 1, last_status_code = ${statusCode}, last_error = null,
           delivered_at = now(), claimed_until = null, claim_token = null
     where id = ${id}::bigint and claim_token = ${token}::uuid and status in ('pending', 'failed_retrying')
    returning extract(epoch from (now() - created_at)) as lag`.execute(db);
  return rows[0] === undefined ? undefined : Number(rows[0].lag);
}

/** A failed attempt: retry after `retryInMs`, or dead (undefined). */
export async function markFailed(
  db: Db,
  token: string,
  id: string,
  failure: { readonly error: string; readonly statusCode?: number; readonly retryInMs?: number },
): Promise<boolean> {
  const dead = failure.retryInMs === undefined;
  const result = await sql`
    update webhook_deliveries
       set status = ${dead ? "dead" : "failed_retrying"}, attempts = attempts + 1,
           last_status_code = ${failure.statusCode ?? null}, last_error = ${failure.error},
           next_attempt_at = now() + make_interval(secs => ${(failure.retryInMs ?? 0) / 1000}::float8),
           claimed_until = null, claim_token = null
     where id = ${id}::bigint and claim_token = ${token}::uuid and status in ('pending', 'failed_retrying')`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}

/** Ends a lease without an attempt (the worker stopped mid-send): claimable again at once. */
export async function releaseDelivery(db: Db, token: string, id: string): Promise<void> {
  await sql`
    update webhook_deliveries set claimed_until = null, claim_token = null
     where id = ${id}::bigint and claim_token = ${token}::uuid`.execute(db);
}

/** Deliveries not yet delivered or dead (metrics). */
export async function openDeliveryCount(db: Db): Promise<number> {
  const row = await db
    .selectFrom("webhook_deliveries")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("status", "in", ["pending", "failed_retrying"])
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
