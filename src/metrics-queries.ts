import { type Kysely, sql } from "kysely";
import type { DB } from "./db/schema.js";

/** Pending approvals older than this are not counted (abandoned releases), in days. */
export const PENDING_WINDOW_DAYS = 30;

/** Unpublished outbox rows and the age of the oldest, in seconds (0 when none). */
export async function outboxBacklog(db: Kysely<DB>): Promise<{ depth: number; oldestAgeSeconds: number }> {
  const { rows } = await sql<{ depth: string; oldest_age: number | null }>`
    select count(*) as depth,
           extract(epoch from (now() - min(created_at)))::float8 as oldest_age
      from outbox
     where published_at is null`.execute(db);
  const row = rows[0];
  return { depth: Number(row?.depth ?? 0), oldestAgeSeconds: Math.max(0, row?.oldest_age ?? 0) };
}

/**
 * Intents a scrape looks at per gated environment: the most recently
 * registered ones of its project. Bounds a scrape's cost (at most this many
 * intents, each with a few index probes, per gate) whatever the number of
 * intents, votes and history rows.
 */
export const PENDING_SCAN_PER_GATE = 100;

/**
 * Ages (seconds since the intent was registered) of the releases waiting for
 * approval: an enabled external-approval policy gates the environment, the
 * intent was not deployed there, nobody rejected it and it has fewer
 * approvals than the strictest policy requires. Only each gated
 * environment's PENDING_SCAN_PER_GATE most recent intents of its project,
 * registered in the last PENDING_WINDOW_DAYS, are looked at (index
 * `release_intents_project_created`), so at most that many per gate are
 * counted.
 */
export async function pendingApprovalAges(db: Kysely<DB>): Promise<number[]> {
  const { rows } = await sql<{ age: number }>`
    with gates as (
      select organisation, project, config->>'targetEnvironment' as environment,
             max((config->>'requiredApprovals')::int) as required
        from policies
       where enabled and policy_type = 'external_approval'
       group by 1, 2, 3
    )
    select extract(epoch from (now() - i.created_at))::float8 as age
      from gates g
      cross join lateral (
             select r.id, r.created_at from release_intents r
              where r.organisation = g.organisation and r.project = g.project
                and r.created_at > now() - make_interval(days => ${PENDING_WINDOW_DAYS})
              order by r.created_at desc
              limit ${PENDING_SCAN_PER_GATE}) i
     where not exists (
             select 1 from deployments d
              where d.release_intent_id = i.id and d.environment = g.environment and d.status = 'succeeded')
       and not exists (
             select 1 from approval_votes v
              where v.release_intent_id = i.id and v.environment = g.environment and v.decision = 'rejected')
       and (select count(*) from approval_votes v
             where v.release_intent_id = i.id and v.environment = g.environment
               and v.decision = 'approved') < g.required`.execute(db);
  return rows.map((r) => Math.max(0, r.age));
}
