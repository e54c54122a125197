import { type Kysely, sql, type Transaction } from "kysely";
import { type BreakGlassJson, type BreakGlassMark, breakGlassFromJson } from "../approval/break-glass-mark.js";
import type { Vote } from "../approval/vote.js";
import type { ProjectRef } from "../policy/policy.js";
import type { ApprovalRequest } from "../requests/request-state.js";
import { VOTE_JSON_COLUMNS, type VoteJson, votesFromJson } from "./approval.repository.js";
import { newestRequestIdSql, newestRequestJsonSql, requestFromJson } from "./approval-request.repository.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

export interface EvaluationReads {
  /** The release intent to look up in `project`, if the request named one. */
  readonly releaseIntentId?: string;
  /** Source environments of the applicable soak policies. */
  readonly sourceEnvironments: readonly string[];
  /** Target environment whose votes to read; undefined when no approval policy applies. */
  readonly votesEnvironment?: string;
}

export interface EvaluationRows {
  /** Undefined when no intent was asked for, or it is not in the project. */
  readonly intent?: { readonly branch: string; readonly author: string; readonly registrant: string; readonly registrantIsUser: boolean };
  /** When releasegate recorded the latest successful deployment per source environment (of the intent, else of the project). */
  readonly lastSuccessfulDeploy: Map<string, Date>;
  /** Current votes for the intent in `votesEnvironment`, in the order first cast. */
  readonly votes: Vote[];
  /** The newest break-glass on the intent in `votesEnvironment`, if any. */
  readonly breakGlass?: BreakGlassMark;
  /** The newest approval request of the intent in `votesEnvironment`, if any (votes are that request's). */
  readonly request?: ApprovalRequest;
}

/**
 * Everything EvaluatePolicies reads besides the policies, in one round trip:
 * the intent, the latest successful deploy per source environment (one index
 * probe each, LATERAL), the current votes and the newest break-glass (one
 * index probe). Parts not asked for are not
 * queried. JSON aggregation keeps it one row; its timestamps are ISO strings.
 */
export async function readEvaluationRows(db: Db, project: ProjectRef, reads: EvaluationReads): Promise<EvaluationRows> {
  const intentId = reads.releaseIntentId;
  const wantsVotes = intentId !== undefined && reads.votesEnvironment !== undefined;
  if (intentId === undefined && reads.sourceEnvironments.length === 0)
    return { lastSuccessfulDeploy: new Map(), votes: [] };
  const intentPart =
    intentId === undefined
      ? sql`null::json`
      : sql`(select json_build_object('branch', i.branch, 'author', i.author_user_id, 'registrant', i.registered_by_user_id,
                                      'registrantIsUser', i.registered_by_actor_type <> 'service') from release_intents i
             where i.id = ${intentId}::uuid and i.organisation = ${project.organisation} and i.project = ${project.project})`;
  const deployFilter =
    intentId !== undefined
      ? sql`d.release_intent_id = ${intentId}::uuid`
      : sql`d.organisation = ${project.organisation} and d.project = ${project.project}`;
  const deploysPart =
    reads.sourceEnvironments.length === 0
      ? sql`null::json`
      : sql`(select json_agg(json_build_array(e.env, latest.recorded_at))
             from (values ${sql.join(reads.sourceEnvironments.map((env) => sql`(${env}::text)`))}) as e(env)
             cross join lateral (
               select d.recorded_at from deployments d
               where ${deployFilter} and d.environment = e.env and d.status = 'succeeded'
               order by d.recorded_at desc
               limit 1
             ) latest)`;
  const votesPart =
    !wantsVotes
      ? sql`null::json`
      : sql`(select json_agg(json_build_array(${VOTE_JSON_COLUMNS})
                             order by v.first_cast_seq)
             from approval_votes v
             where v.release_intent_id = ${intentId}::uuid and v.environment = ${reads.votesEnvironment}
               and v.request_id is not distinct from ${newestRequestIdSql(sql`${intentId}::uuid`, reads.votesEnvironment!)})`;
  const requestPart = !wantsVotes
    ? sql`null::json`
    : newestRequestJsonSql(sql`${intentId}::uuid`, reads.votesEnvironment!);
  const breakGlassPart = !wantsVotes
    ? sql`null::json`
    : sql`(select json_build_array(b.user_id, b.username, b.reason, b.recorded_at) from break_glass b
           where b.release_intent_id = ${intentId}::uuid and b.environment = ${reads.votesEnvironment}
           order by b.seq desc
           limit 1)`;
  const { rows } = await sql<{
    intent: { branch: string; author: string; registrant: string; registrantIsUser: boolean } | null;
    deploys: [string, string][] | null;
    votes: VoteJson[] | null;
    break_glass: BreakGlassJson | null;
    request: unknown;
  }>`select ${intentPart} as intent, ${deploysPart} as deploys, ${votesPart} as votes,
            ${breakGlassPart} as break_glass, ${requestPart} as request`.execute(db);
  const row = rows[0];
  const lastSuccessfulDeploy = new Map<string, Date>();
  for (const [env, recordedAt] of row?.deploys ?? []) lastSuccessfulDeploy.set(env, new Date(recordedAt));
  const breakGlass = breakGlassFromJson(row?.break_glass);
  const request = requestFromJson(row?.request);
  return {
    ...(request !== undefined ? { request } : {}),
    intent: row?.intent ?? undefined,
    lastSuccessfulDeploy,
    votes: votesFromJson(row?.votes),
    ...(breakGlass !== undefined ? { breakGlass } : {}),
  };
}
