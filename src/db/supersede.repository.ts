import { type Kysely, sql, type Transaction } from "kysely";
import type { ProjectRef } from "../policy/policy.js";
import type { SupersedeFacts } from "../policy/supersede.js";
import type { OutboxInsert } from "./outbox.repository.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

// "Newer" everywhere below: registered later on the server's clock, and for
// the same instant the greater id (src/policy/supersede.ts). Written as a
// range on created_at plus a tie test so that the (organisation, project
// [, branch], created_at) indexes bound the scan.
const NEWER_THAN_I = sql`n.created_at >= i.created_at and (n.created_at > i.created_at or n.id > i.id)`;

/**
 * What a supersede policy judges for one intent and target environment, in
 * one statement: the intent's branch, whether it has a successful
 * deployment there, and the first newer intent of the project (and, when
 * `withBranch`, of its branch). Index probes: release_intents_project_created
 * (0009), release_intents_project_branch_created (0017),
 * deployments_intent_env_latest (0001). Undefined when the intent is not in
 * the project.
 */
export async function readSupersedeFacts(
  db: Db,
  project: ProjectRef,
  intentId: string,
  environment: string,
  withBranch: boolean,
): Promise<SupersedeFacts | undefined> {
  const { rows } = await sql<{
    branch: string;
    deployed: boolean;
    newer_in_project: string | null;
    newer_on_branch: string | null;
  }>`
    select i.branch,
      exists (select 1 from deployments d
              where d.release_intent_id = i.id and d.environment = ${environment} and d.status = 'succeeded') as deployed,
      (select n.id from release_intents n
        where n.organisation = i.organisation and n.project = i.project and ${NEWER_THAN_I}
        order by n.created_at, n.id limit 1) as newer_in_project,
      case when ${withBranch}::boolean and i.branch <> '' then
        (select n.id from release_intents n
          where n.organisation = i.organisation and n.project = i.project and n.branch = i.branch and ${NEWER_THAN_I}
          order by n.created_at, n.id limit 1)
      end as newer_on_branch
    from release_intents i
    where i.id = ${intentId}::uuid and i.organisation = ${project.organisation} and i.project = ${project.project}`.execute(
    db,
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    branch: row.branch,
    deployedToTarget: row.deployed,
    ...(row.newer_in_project !== null ? { newerInProject: row.newer_in_project } : {}),
    ...(row.newer_on_branch !== null ? { newerOnBranch: row.newer_on_branch } : {}),
  };
}

/** A pending request that a newer intent supersedes. */
export interface SupersedeCandidate {
  readonly requestId: string;
  readonly releaseIntentId: string;
  /** Current approvals of the intent in the environment (for the event). */
  readonly approvals: number;
}

/**
 * Locks (in id order, so concurrent registrations cannot deadlock) the
 * pending requests for `environment` of the project's intents older than
 * `newerIntentId` that are not deployed there, on its branch when
 * `sameBranchOnly` (none when the newer intent has no branch). Index:
 * approval_requests_pending_org (0016): the organisation's pending requests,
 * few by nature.
 */
export async function lockSupersedeCandidates(
  trx: Transaction<DB>,
  project: ProjectRef,
  newerIntentId: string,
  environment: string,
  sameBranchOnly: boolean,
): Promise<SupersedeCandidate[]> {
  const { rows } = await sql<{ request_id: string; release_intent_id: string; approvals: string | number }>`
    select r.id as request_id, r.release_intent_id,
      (select count(*) from approval_votes v
        where v.release_intent_id = r.release_intent_id and v.environment = r.environment
          and v.decision = 'approved' and (v.request_id is null or v.request_id = r.id)) as approvals
    from approval_requests r
    join release_intents i on i.id = r.release_intent_id
    join release_intents n on n.id = ${newerIntentId}::uuid
    where r.organisation = ${project.organisation} and r.project = ${project.project}
      and r.environment = ${environment} and r.state = 'pending'
      and ${NEWER_THAN_I}
      and (not ${sameBranchOnly}::boolean or (n.branch <> '' and i.branch = n.branch))
      and not exists (select 1 from deployments d
                      where d.release_intent_id = i.id and d.environment = r.environment and d.status = 'succeeded')
    order by r.id
    for update of r`.execute(trx);
  return rows.map((r) => ({ requestId: r.request_id, releaseIntentId: r.release_intent_id, approvals: Number(r.approvals) }));
}

/** One supersession to record. */
export interface SupersessionWrite {
  readonly project: ProjectRef;
  readonly requestId: string;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly supersededBy: string;
  readonly reason: string;
  readonly at: Date;
  readonly outbox: OutboxInsert;
}

/**
 * Ends a pending request as `superseded` (decided by 'system'), writes its
 * history row (user 'system', decision 'superseded', the reason as comment)
 * and its outbox event, bumps the intent's vote version (a vote decided on
 * a basis from before sees the request ended) and NOTIFYs on commit, in one
 * statement. False, having written nothing, when the request is no longer
 * pending.
 */
export async function writeSupersession(db: Db, w: SupersessionWrite): Promise<boolean> {
  const at = w.at.toISOString();
  const { outbox } = w;
  const { rows } = await sql<{ notified: string }>`
    with ended as (
      update approval_requests
         set state = 'superseded', decided_at = ${at}::timestamptz, decided_by = 'system',
             decision_reason = ${w.reason}, superseded_by = ${w.supersededBy}::uuid, updated_at = ${at}::timestamptz
       where id = ${w.requestId}::uuid and state = 'pending'
      returning release_intent_id
    ), bumped as (
      update release_intents set vote_version = vote_version + 1
       where id in (select release_intent_id from ended)
      returning id
    ), logged as (
      insert into approval_history
        (organisation, project, release_intent_id, environment, user_id, username, decision, previous_decision,
         decision_kind, comment, decided_at)
      select ${w.project.organisation}, ${w.project.project}, id, ${w.environment}, 'system', 'system',
             'superseded', null, 'system', ${w.reason}, ${at}::timestamptz
      from bumped
      returning 1
    ), queued as (
      insert into outbox (event_id, release_intent_id, subject, payload, created_at)
      select ${outbox.eventId}::uuid, id, ${outbox.subject}, ${outbox.json}::jsonb, ${at}::timestamptz
      from bumped
      returning 1
    )
    select pg_notify(${outbox.channel}, ${outbox.notification})::text as notified
    from queued, logged`.execute(db);
  return rows.length === 1;
}
