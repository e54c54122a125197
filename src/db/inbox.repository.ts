import { type Kysely, type SqlBool, sql, type Transaction } from "kysely";
import type { Vote } from "../approval/vote.js";
import type { Policy } from "../policy/policy.js";
import { VOTE_JSON_COLUMNS, type VoteJson, votesFromJson } from "./approval.repository.js";
import { toPolicy } from "./policy.repository.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/** Which pending requests of an organisation an inbox query looks at. */
export interface PendingFilter {
  readonly organisation: string;
  readonly project?: string;
  readonly environment?: string;
  /**
   * Leave out the requests this user may never approve or already voted on:
   * those of intents they authored or (as a person) registered, and those
   * with their vote. Unset: every pending request (an admin's `all`).
   */
  readonly excludeUserId?: string;
}

/** A project+environment with pending requests, and how many pass the filter there. */
export interface PendingPair {
  readonly project: string;
  readonly environment: string;
  readonly pending: number;
}

/** A pending request with what an inbox shows of its intent, and the votes cast on it. */
export interface PendingRow {
  readonly id: string;
  readonly project: string;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly requestedByUserId: string;
  readonly requestedByActorType: string;
  readonly openedBy: string;
  readonly requestedAt: Date;
  readonly expiresAt?: Date;
  readonly authorUserId: string;
  readonly registeredByUserId: string;
  readonly registeredByActorType: string;
  readonly branch: string;
  readonly version: string;
  /** Current votes cast on this request, in the order first cast. */
  readonly votes: Vote[];
}

function baseQuery(db: Db, f: PendingFilter) {
  let q = db
    .selectFrom("approval_requests as r")
    .innerJoin("release_intents as i", "i.id", "r.release_intent_id")
    .where("r.organisation", "=", f.organisation)
    .where("r.state", "=", "pending");
  if (f.project !== undefined) q = q.where("r.project", "=", f.project);
  if (f.environment !== undefined) q = q.where("r.environment", "=", f.environment);
  const me = f.excludeUserId;
  if (me !== undefined)
    q = q
      .where("i.author_user_id", "<>", me)
      .where((eb) => eb.not(eb.and([eb("i.registered_by_actor_type", "=", "user"), eb("i.registered_by_user_id", "=", me)])))
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom("approval_votes as v")
              .select(sql.lit(1).as("one"))
              .whereRef("v.release_intent_id", "=", "r.release_intent_id")
              .whereRef("v.environment", "=", "r.environment")
              .where("v.user_id", "=", me)
              .whereRef("v.request_id", "=", "r.id"),
          ),
        ),
      );
  return q;
}

/**
 * Pending requests per project and environment under `f`, counted (index
 * approval_requests_pending_org_project; the intent and vote probes go by
 * primary key). What the inbox decides eligibility on: once per pair, not
 * per request.
 */
export async function listPendingPairs(db: Db, f: PendingFilter): Promise<PendingPair[]> {
  const rows = await baseQuery(db, f)
    .select(["r.project", "r.environment", sql<string>`count(*)::text`.as("pending")])
    .groupBy(["r.project", "r.environment"])
    .orderBy("r.project")
    .orderBy("r.environment")
    .execute();
  return rows.map((r) => ({ project: r.project, environment: r.environment, pending: Number(r.pending) }));
}

export interface PendingPageQuery extends PendingFilter {
  /** Only these project+environment pairs (the viewer's eligible ones); unset: all. Empty: none. */
  readonly pairs?: readonly { readonly project: string; readonly environment: string }[];
  /** Continue after this request (the last of the previous page), in (requested_at, id) order. */
  readonly afterId?: string;
  readonly limit: number;
}

/** One page of pending requests, oldest first (requested_at, id), with intent facts and votes. */
export async function listPendingPage(db: Db, q: PendingPageQuery): Promise<PendingRow[]> {
  if (q.pairs !== undefined && q.pairs.length === 0) return [];
  let query = baseQuery(db, q);
  const pairs = q.pairs;
  if (pairs !== undefined)
    query = query.where((eb) =>
      eb(
        eb.refTuple("r.project", "r.environment"),
        "in",
        pairs.map((p) => eb.tuple(p.project, p.environment)),
      ),
    );
  const afterId = q.afterId;
  if (afterId !== undefined)
    query = query.where(
      sql<SqlBool>`(r.requested_at, r.id) > (select a.requested_at, a.id from approval_requests a where a.id = ${afterId})`,
    );
  const rows = await query
    .select([
      "r.id",
      "r.project",
      "r.release_intent_id",
      "r.environment",
      "r.requested_by_user_id",
      "r.requested_by_actor_type",
      "r.opened_by",
      "r.requested_at",
      "r.expires_at",
      "i.author_user_id",
      "i.registered_by_user_id",
      "i.registered_by_actor_type",
      "i.branch",
      "i.version",
      sql<VoteJson[] | null>`(
        select json_agg(json_build_array(${VOTE_JSON_COLUMNS}) order by v.first_cast_seq)
        from approval_votes v
        where v.release_intent_id = r.release_intent_id and v.environment = r.environment and v.request_id = r.id)`.as(
        "votes",
      ),
    ])
    .orderBy("r.requested_at")
    .orderBy("r.id")
    .limit(q.limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    project: r.project,
    releaseIntentId: r.release_intent_id,
    environment: r.environment,
    requestedByUserId: r.requested_by_user_id,
    requestedByActorType: r.requested_by_actor_type,
    openedBy: r.opened_by,
    requestedAt: r.requested_at,
    ...(r.expires_at !== null ? { expiresAt: r.expires_at } : {}),
    authorUserId: r.author_user_id,
    registeredByUserId: r.registered_by_user_id,
    registeredByActorType: r.registered_by_actor_type,
    branch: r.branch,
    version: r.version,
    votes: votesFromJson(r.votes),
  }));
}

/** The enabled approval policies of several projects of one organisation, by project (one query). */
export async function listApprovalPoliciesOf(
  db: Db,
  organisation: string,
  projects: readonly string[],
): Promise<Map<string, Policy[]>> {
  const byProject = new Map<string, Policy[]>();
  if (projects.length === 0) return byProject;
  const rows = await db
    .selectFrom("policies")
    .selectAll()
    .where("organisation", "=", organisation)
    .where("project", "in", projects)
    .where("policy_type", "=", "external_approval")
    .where("enabled", "=", true)
    .orderBy("project")
    .orderBy(sql`name collate "C"`)
    .execute();
  for (const row of rows) {
    const list = byProject.get(row.project) ?? [];
    list.push(toPolicy(row));
    byProject.set(row.project, list);
  }
  return byProject;
}
