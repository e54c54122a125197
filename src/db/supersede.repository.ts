import { type Kysely, sql, type Transaction } from "kysely";
import type { ProjectRef } from "../policy/policy.js";
import type { SupersedeFacts } from "../policy/supersede.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

// "Newer" everywhere below: registered after, in the order registrations
// drew registered_seq (src/policy/supersede.ts); the (organisation, project
// [, branch], registered_seq) indexes of 0017 bound the scan.
const NEWER_THAN_I = sql`n.registered_seq > i.registered_seq`;

/**
 * What a supersede policy judges for one intent and target environment, in
 * one statement: the intent's branch, whether it has a successful
 * deployment there, and the first newer intent of the project (and, when
 * `withBranch`, of its branch). Index probes: release_intents_project_registered
 * and release_intents_project_branch_registered (0017),
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
        order by n.registered_seq limit 1) as newer_in_project,
      case when ${withBranch}::boolean and i.branch <> '' then
        (select n.id from release_intents n
          where n.organisation = i.organisation and n.project = i.project and n.branch = i.branch and ${NEWER_THAN_I}
          order by n.registered_seq limit 1)
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

/**
 * The older intents of the project whose request for `environment` is
 * pending and that a registration of `newerIntentId` supersedes: registered
 * before it, not deployed there, and on its branch when `sameBranchOnly`
 * (none when the newer intent has no branch), and not yet due to expire at
 * `now` (a due request is expired, whether or not the reaper has marked it). The requests themselves are
 * locked and ended by `supersedePendingRequests`
 * (src/db/approval-request.repository.ts). Index: approval_requests_pending_org
 * (0016): the organisation's pending requests, few by nature.
 */
export async function findSupersedeCandidates(
  db: Db,
  project: ProjectRef,
  newerIntentId: string,
  environment: string,
  sameBranchOnly: boolean,
  now: Date,
): Promise<string[]> {
  const { rows } = await sql<{ release_intent_id: string }>`
    select r.release_intent_id
    from approval_requests r
    join release_intents i on i.id = r.release_intent_id
    join release_intents n on n.id = ${newerIntentId}::uuid
    where r.organisation = ${project.organisation} and r.project = ${project.project}
      and r.environment = ${environment} and r.state = 'pending'
      -- A request past its expiry is expired, reaped or not: it is not superseded.
      and (r.expires_at is null or r.expires_at > ${now})
      and ${NEWER_THAN_I}
      and (not ${sameBranchOnly}::boolean or (n.branch <> '' and i.branch = n.branch))
      and not exists (select 1 from deployments d
                      where d.release_intent_id = i.id and d.environment = r.environment and d.status = 'succeeded')
    order by r.release_intent_id`.execute(db);
  return rows.map((r) => r.release_intent_id);
}
