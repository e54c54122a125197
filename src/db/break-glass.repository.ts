import { type Kysely, sql, type Transaction } from "kysely";
import type { BreakGlassMark } from "../approval/break-glass-mark.js";
import type { ProjectRef } from "../policy/policy.js";
import type { OutboxInsert } from "./outbox.repository.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/** The newest break-glass on an intent for one environment; undefined when there is none. */
export async function findBreakGlass(
  db: Db,
  releaseIntentId: string,
  environment: string,
): Promise<BreakGlassMark | undefined> {
  const row = await db
    .selectFrom("break_glass")
    .select(["user_id", "username", "reason", "recorded_at"])
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment)
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  return row === undefined
    ? undefined
    : { userId: row.user_id, username: row.username, reason: row.reason, recordedAt: new Date(row.recorded_at) };
}

/** A break-glass to record, with its outbox event. */
export interface BreakGlassWrite {
  readonly project: ProjectRef;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly mark: BreakGlassMark;
  readonly outbox: OutboxInsert;
}

/**
 * Records a break-glass, its history row (decision `approved`, kind
 * `break_glass`, comment = reason) and its outbox event, and NOTIFYs
 * listeners on commit, in one statement. Bumps the intent's vote version, so
 * a vote decided on a basis from before it is decided again (its event then
 * says the gate passed). Returns false, having written nothing, when the
 * intent is not in `project`.
 */
export async function writeBreakGlass(db: Db, w: BreakGlassWrite): Promise<boolean> {
  const { mark, outbox } = w;
  const at = mark.recordedAt.toISOString();
  const { rows } = await sql<{ notified: string }>`
    with bumped as (
      update release_intents set vote_version = vote_version + 1
      where id = ${w.releaseIntentId}::uuid
        and organisation = ${w.project.organisation} and project = ${w.project.project}
      returning id
    ), recorded as (
      insert into break_glass
        (release_intent_id, environment, organisation, project, user_id, username, reason, recorded_at, event_id)
      select id, ${w.environment}, ${w.project.organisation}, ${w.project.project}, ${mark.userId}, ${mark.username},
             ${mark.reason}, ${at}::timestamptz, ${outbox.eventId}::uuid
      from bumped
      returning 1
    ), logged as (
      insert into approval_history
        (organisation, project, release_intent_id, environment, user_id, username, decision, previous_decision,
         decision_kind, comment, decided_at)
      select ${w.project.organisation}, ${w.project.project}, id, ${w.environment}, ${mark.userId}, ${mark.username},
             'approved', null, 'break_glass', ${mark.reason}, ${at}::timestamptz
      from bumped
      returning 1
    ), queued as (
      insert into outbox (event_id, release_intent_id, subject, payload, created_at)
      select ${outbox.eventId}::uuid, id, ${outbox.subject}, ${outbox.json}::jsonb, ${at}::timestamptz
      from bumped
      returning 1
    )
    select pg_notify(${outbox.channel}, ${outbox.notification})::text as notified
    from queued, recorded, logged`.execute(db);
  return rows.length === 1;
}
