import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { ApprovalAuditService } from "../../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalQueryService } from "../../src/gen/releasegate/v1/approval_query_pb.js";
import { ApprovalRequestService } from "../../src/gen/releasegate/v1/approval_request_pb.js";
import { ApproverService } from "../../src/gen/releasegate/v1/approver_pb.js";
import {
  approveSeeded,
  createBenchDatabase,
  evaluateSeeded,
  grpcTransport,
  loadCaller,
  registerIntents,
  type SeededProject,
  seedProject,
  serverEnv,
  userToken,
} from "./fixtures.js";
import { alternatingMedians, type BenchSettings, type LoadResult, runLoad, waitFor } from "./load.js";
import { startServerProcess } from "./server-process.js";
import { deleteStream } from "./signal.js";
import { type RecordedStatement, startStatementRecorder } from "./statement-recorder.js";

/** The tables grown to the large size: a sequential scan on one of them is what this section looks for. */
export const GROWN_TABLES = ["release_intents", "deployments", "approval_votes", "approval_history", "outbox", "approver_groups", "approver_group_members", "role_grants", "approval_requests"] as const;
/** Every this-many-th grown intent has a pending approval request on prod; the others' requests are final (approved). */
export const PENDING_EVERY = 250;
/** Whose inbox is measured: a member of group security, eligible for the three-rule approval of the evaluated project. */
const INBOX_USER = "ann";
/** How long the relay may take to publish the hot phase's events, milliseconds. */
const RELAY_TIMEOUT_MS = 15_000;

/** EvaluatePolicies at one caller with `rows` rows in each grown table (loaded in `loadSeconds`). */
export interface ScalePoint {
  readonly rows: number;
  readonly loadSeconds: number;
  readonly evaluate: LoadResult;
  /** ListPendingApprovals (first page, 50) and CountPendingApprovals of INBOX_USER, and the count it answered. */
  readonly inbox: { readonly list: LoadResult; readonly count: LoadResult; readonly pending: number };
}

export interface ScaleResult {
  readonly small: ScalePoint;
  readonly large: ScalePoint;
  /** EXPLAIN ANALYZE at the large size of every statement the server ran in the hot phase, by SQL. */
  readonly plans: readonly { readonly sql: string; readonly plan: string }[];
  /** Plan lines with a sequential scan of a grown table. */
  readonly seqScans: readonly string[];
  /** Peak RSS of this server at the large size, bytes. */
  readonly peakRssBytes: number;
}

/** Rows inserted per statement while bulk-loading. */
const CHUNK = 200_000;

/**
 * Grows each of GROWN_TABLES (outbox rows published) to `total` rows with one
 * statement per chunk (generate_series); 1 in 100 rows belongs to the
 * benchmark project (its organisation, for the directory), the rest spread
 * over 5,000 others. Each intent's author gets a group of their own with
 * them in it and a project grant, expiring a day after the intent (most
 * have expired: expired rows are kept). Each intent has an approval request
 * on prod, pending for 1 in PENDING_EVERY (in the evaluated project and
 * across the others), approved for the rest.
 */
export async function growTo(pool: pg.Pool, seeded: SeededProject, from: number, total: number): Promise<void> {
  for (let lo = from + 1; lo <= total; lo += CHUNK)
    await pool.query(
      `with new as (
         insert into release_intents (id, organisation, project, author_user_id, author_username, registered_by_user_id, registered_by_actor_type, branch, version, created_at)
         select gen_random_uuid(), case when g % 100 = 0 then $3 else 'org-' || (g % 500) end, case when g % 100 = 0 then $4 else 'proj-' || (g % 5000) end,
                'author-' || (g % 1000), 'author', 'author-' || (g % 1000), 'user', 'main', 'v' || g, now() - make_interval(secs => g)
         from generate_series($1::int, $2::int) g returning id, organisation, project, author_user_id, created_at, version),
       d as (insert into deployments (organisation, project, environment, release_intent_id, status, finished_at, recorded_at)
             select organisation, project, 'staging', id, 'succeeded', created_at, created_at from new),
       v as (insert into approval_votes (release_intent_id, environment, user_id, username, decision, decision_kind, first_cast_at, decided_at)
             select id, 'prod', 'voter', 'voter', 'approved', 'peer', created_at, created_at from new),
       h as (insert into approval_history (organisation, project, release_intent_id, environment, user_id, username, decision, decision_kind, decided_at)
             select organisation, project, id, 'prod', 'voter', 'voter', 'approved', 'peer', created_at from new),
       -- Published within the last hour (the relay's 7-day retention sweep leaves them be), with the payload keys a Watch resume looks up.
       o as (insert into outbox (event_id, release_intent_id, subject, payload, created_at, published_at)
             select gen_random_uuid(), id, 'bench.approvals', jsonb_build_object('organisation', organisation, 'project', project, 'environment', 'prod'),
                    now() - make_interval(secs => extract(epoch from now() - created_at)::int % 3600), now() from new),
       ag as (insert into approver_groups (organisation, name, created_at, created_by)
              select organisation, 'grown-' || id, created_at, 'bench' from new returning organisation, name, created_at),
       m as (insert into approver_group_members (organisation, group_name, user_id, display_name, scope, scope_id, expires_at, added_at, added_by)
             select ag.organisation, ag.name, new.author_user_id, 'author', 'organisation', '', new.created_at + interval '1 day', new.created_at, 'bench'
             from ag join new on ag.name = 'grown-' || new.id),
       r as (insert into role_grants (id, organisation, user_id, role, scope, scope_id, expires_at, granted_at, granted_by)
             select gen_random_uuid(), organisation, author_user_id, 'maintainer', 'project', project, created_at + interval '1 day', created_at, 'bench' from new),
       rq as (insert into approval_requests (id, organisation, project, release_intent_id, environment, state, requested_by_user_id, requested_by_actor_type, opened_by, requested_at, decided_at, decided_by, updated_at)
              select gen_random_uuid(), organisation, project, id, 'prod', p.state, 'bench-pipeline', 'service', 'request', created_at,
                     case when p.state = 'pending' then null else created_at end, case when p.state = 'pending' then null else 'system' end, created_at
              from new, lateral (select case when right(version, -1)::int % $5 = 0 then 'pending' else 'approved' end as state) p)
       select count(*) from new`,
      [lo, Math.min(total, lo + CHUNK - 1), seeded.project.organisation, seeded.project.project, PENDING_EVERY],
    );
  for (const table of GROWN_TABLES) await pool.query(`vacuum analyze ${table}`);
}

/**
 * EXPLAIN ANALYZE of `statement` with its recorded parameters, in a transaction that is rolled back (it may write);
 * plain EXPLAIN when running it again would violate a unique key.
 */
async function explain(pool: pg.Pool, statement: RecordedStatement): Promise<string> {
  const client = await pool.connect();
  try {
    const plan = async (options: string) => {
      await client.query("begin");
      const { rows } = await client.query<{ "QUERY PLAN": string }>(`explain (${options}) ${statement.sql}`, [...statement.parameters]);
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    };
    try {
      return await plan("analyze, costs off, timing off, summary off");
    } catch (err) {
      // A write of a key the hot phase committed (an approval request's lifecycle event, inserted by
      // its event id) cannot run again: plan it without running it, which still shows its scans.
      if ((err as { code?: unknown }).code !== "23505") throw err;
      await client.query("rollback");
      return await plan("costs off");
    }
  } catch (err) {
    return `EXPLAIN failed: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await client.query("rollback").catch(() => undefined);
    client.release();
  }
}

/**
 * What the server runs per request and per event, issued over the wire:
 * EvaluatePolicies, votes on a fresh intent from a group member and a grantee (with the relay
 * claiming, publishing and marking their events), who may still approve, the
 * audit history and a Watch resumed after an event.
 */
async function hotPhase(baseUrl: string, seeded: SeededProject, pool: pg.Pool, startRecording: () => void): Promise<void> {
  const transport = grpcTransport(baseUrl, await userToken("bench-admin", "admin"));
  const [organisation, audit, directory] = [seeded.project.organisation, createClient(ApprovalAuditService, transport), createClient(ApproverService, transport)];
  await directory.addGroupMember({ organisation, group: "sre", userId: "scale-voter-0", displayName: "voter 0", scope: "organisation" });
  await directory.grantRole({ organisation, userId: "scale-voter-1", role: "maintainer", scope: "project", scopeId: seeded.project.project });
  // The seeded intent is approved (its request is final: a later vote is FAILED_PRECONDITION by design),
  // so the hot phase votes on an intent of its own; the two votes fill two of its three rules, leaving it pending.
  const [voted = ""] = await registerIntents(baseUrl, seeded.project, 1);
  startRecording(); // after enrolling the voters and registering: writes of set-up, not of the hot phase
  const pipeline = await loadCaller(baseUrl, "bench-pipeline");
  const evaluate = evaluateSeeded(pipeline, seeded);
  for (let i = 0; i < 20; i++) await evaluate();
  pipeline.close();
  const watch = { project: seeded.project, targetEnvironment: "prod" };
  const voters = await Promise.all([0, 1].map((i) => loadCaller(baseUrl, `scale-voter-${i}`)));
  const events: string[] = [];
  for await (const m of audit.watchApprovalEvents(watch)) {
    if (m.subscribed) for (const voter of voters) await approveSeeded(voter, seeded, voted);
    if (m.event !== undefined && events.push(m.event.eventId) === voters.length) break;
  }
  for (const voter of voters) voter.close();
  for await (const m of audit.watchApprovalEvents({ ...watch, resumeAfterEventId: events[0] ?? "" }))
    if (m.event !== undefined) break;
  await createClient(ApprovalQueryService, transport).listEligibleApprovers({ project: seeded.project, releaseIntentId: voted, targetEnvironment: "prod" });
  await audit.listApprovalHistory({ project: seeded.project, releaseIntentId: voted, targetEnvironment: "prod", pageSize: 10 });
  const inbox = createClient(ApprovalRequestService, grpcTransport(baseUrl, await userToken(INBOX_USER)));
  await inbox.listPendingApprovals({ organisation });
  const inProject = { organisation, project: seeded.project.project };
  const first = await inbox.listPendingApprovals(inProject);
  await inbox.listPendingApprovals({ ...inProject, pageToken: first.nextPageToken });
  await inbox.countPendingApprovals({ organisation });
  await waitFor("the relay publishing every event", RELAY_TIMEOUT_MS, async () => (await pool.query("select 1 from outbox where published_at is null limit 1")).rowCount === 0);
}

/**
 * EvaluatePolicies p50 with few vs many rows, on a server of its own whose
 * database connection runs through a StatementRecorder; then every statement
 * it ran for the hot phase, EXPLAINed at the large size.
 */
export async function benchScale(
  settings: BenchSettings,
  natsUrl: string,
  dataDir: string,
  /** Told each size's figures as soon as they are measured (before the hot phase, which may still fail). */
  onPoint?: (point: ScalePoint) => void,
): Promise<ScaleResult> {
  const database = await createBenchDatabase();
  const recorder = await startStatementRecorder(database.url);
  const { env, stream } = serverEnv(recorder.url, dataDir, natsUrl);
  const pool = new pg.Pool({ connectionString: database.url, max: 2 });
  try {
    const server = await startServerProcess(env);
    try {
      const seeded = await seedProject(server.baseUrl, "scale", true);
      const caller = await loadCaller(server.baseUrl, "bench-pipeline");
      const inboxCaller = await loadCaller(server.baseUrl, INBOX_USER);
      const measure = async (rows: number, from: number): Promise<ScalePoint> => {
        const started = process.hrtime.bigint();
        await growTo(pool, seeded, from, rows);
        const loadSeconds = Number(process.hrtime.bigint() - started) / 1e9;
        const options = { callers: 1, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: 100 };
        const [medians] = await alternatingMedians(settings.runs, [() => runLoad(options, evaluateSeeded(caller, seeded))]);
        const organisation = seeded.project.organisation;
        const [list, count] = await alternatingMedians(settings.runs, [
          () => runLoad(options, () => inboxCaller.unary(ApprovalRequestService.method.listPendingApprovals, { organisation })),
          () => runLoad(options, () => inboxCaller.unary(ApprovalRequestService.method.countPendingApprovals, { organisation })),
        ]);
        const answered = await createClient(ApprovalRequestService, grpcTransport(server.baseUrl, await userToken(INBOX_USER))).countPendingApprovals({ organisation });
        const point = { rows, loadSeconds, evaluate: medians, inbox: { list, count, pending: answered.count } };
        onPoint?.(point);
        return point;
      };
      const small = await measure(1_000, 0);
      const large = await measure(settings.quick ? 5_000 : 1_000_000, 1_000);
      caller.close();
      inboxCaller.close();
      await hotPhase(server.baseUrl, seeded, pool, recorder.clear);
      const plans: { sql: string; plan: string }[] = [];
      for (const statement of recorder.statements())
        if (/^\s*(select|insert|update|delete|with)\b/i.test(statement.sql))
          plans.push({ sql: statement.sql.replace(/\s+/g, " ").trim(), plan: await explain(pool, statement) });
      const grown = new RegExp(`Seq Scan on (${GROWN_TABLES.join("|")})\\b`);
      const seqScans = plans.flatMap(({ sql, plan }) =>
        plan.split("\n").filter((line) => grown.test(line) || line.startsWith("EXPLAIN failed")).map((line) => `${line.trim()} (in \`${sql.slice(0, 60)}…\`)`),
      );
      return { small, large, plans, seqScans, peakRssBytes: server.peakRssBytes() };
    } finally {
      await server.stop();
    }
  } finally {
    await pool.end();
    await recorder.stop();
    await database.drop();
    await deleteStream(natsUrl, stream).catch(() => undefined);
  }
}
