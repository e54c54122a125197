import { randomUUID } from "node:crypto";
import { type CompiledQuery, Kysely, PostgresDialect, type Transaction } from "kysely";
import pg from "pg";
import { APPROVAL_DECIDED, type ApprovalDecidedEvent } from "../../src/approval/event.js";
import { readVoteBasis, writeVote } from "../../src/db/approval.repository.js";
import { readEvaluationRows } from "../../src/db/evaluation.repository.js";
import { claimUnpublished, outboxInsertFor, outboxReplay } from "../../src/db/outbox.repository.js";
import type { DB } from "../../src/db/schema.js";
import { evaluateSeeded, loadCaller, type SeededProject } from "./fixtures.js";
import { alternatingMedians, type LoadResult, runLoad } from "./load.js";
import type { ServerProcess } from "./server-process.js";
import type { BenchSettings } from "./settings.js";

/** Rows inserted per statement while bulk-loading. */
const CHUNK = 200_000;

export interface ScalePoint {
  /** Rows in each of release_intents, deployments, approval_votes, approval_history. */
  readonly rows: number;
  readonly loadSeconds: number;
  readonly evaluate: LoadResult;
}

export interface ScaleResult {
  readonly small: ScalePoint;
  readonly large: ScalePoint;
  /** EXPLAIN ANALYZE at the large size, per hot statement. */
  readonly plans: Readonly<Record<string, string>>;
  readonly seqScans: readonly string[];
}

/**
 * Grows release_intents, deployments, approval_votes, approval_history and
 * (published) outbox to `total` rows each with one statement per chunk (generate_series); 1 in 100
 * rows belongs to the benchmark project, the rest spread over 5,000 others.
 */
async function growTo(pool: pg.Pool, seeded: SeededProject, from: number, total: number): Promise<void> {
  for (let lo = from + 1; lo <= total; lo += CHUNK) {
    const hi = Math.min(total, lo + CHUNK - 1);
    await pool.query(
      `with new as (
         insert into release_intents (id, organisation, project, author_user_id, author_username, branch, version, created_at)
         select gen_random_uuid(),
                case when g % 100 = 0 then $3 else 'org-' || (g % 500) end,
                case when g % 100 = 0 then $4 else 'proj-' || (g % 5000) end,
                'author-' || (g % 1000), 'author', 'main', 'v' || g, now() - make_interval(secs => g)
         from generate_series($1::int, $2::int) g
         returning id, organisation, project, created_at),
       d as (
         insert into deployments (organisation, project, environment, release_intent_id, status, finished_at)
         select organisation, project, 'staging', id, 'succeeded', created_at from new),
       v as (
         insert into approval_votes (release_intent_id, environment, user_id, username, decision, decision_kind, first_cast_at, decided_at)
         select id, 'prod', 'voter', 'voter', 'approved', 'peer', created_at, created_at from new),
       h as (
         insert into approval_history (organisation, project, release_intent_id, environment, user_id, username, decision, decision_kind, decided_at)
         select organisation, project, id, 'prod', 'voter', 'voter', 'approved', 'peer', created_at from new),
       o as (
         insert into outbox (event_id, release_intent_id, subject, payload, created_at, published_at)
         -- Recent, so the relay's retention sweep (7 days) leaves them be; the
         -- payload keys a Watch resume looks events up by (its index).
         select gen_random_uuid(), id, 'bench.approvals',
                jsonb_build_object('organisation', organisation, 'project', project, 'environment', 'prod'),
                now() - make_interval(secs => extract(epoch from now() - created_at)::int % 3600), now()
         from new)
       select count(*) from new`,
      [lo, hi, seeded.project.organisation, seeded.project.project],
    );
  }
  for (const table of ["release_intents", "deployments", "approval_votes", "approval_history", "outbox"])
    await pool.query(`vacuum analyze ${table}`);
}

/** Runs `work` through a logging Kysely in a transaction that is rolled back; returns the SQL it issued. */
async function capture(pool: pg.Pool, work: (trx: Transaction<DB>) => Promise<unknown>): Promise<CompiledQuery[]> {
  const captured: CompiledQuery[] = [];
  const db = new Kysely<DB>({
    dialect: new PostgresDialect({ pool }),
    log: (event) => {
      // Kysely logs the transaction's own begin/commit/rollback too.
      if (event.level === "query" && !/^(begin|commit|rollback)\b/i.test(event.query.sql)) captured.push(event.query);
    },
  });
  const rollback = new Error("rollback");
  await db
    .transaction()
    .execute(async (trx) => {
      await work(trx);
      throw rollback;
    })
    .catch((err: unknown) => {
      if (err !== rollback) throw err;
    });
  return captured;
}

/** EXPLAIN ANALYZE of `query` inside a transaction that is rolled back (it may write). */
async function explain(pool: pg.Pool, query: CompiledQuery): Promise<string> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const { rows } = await client.query<{ "QUERY PLAN": string }>(
      `explain (analyze, costs off, timing off, summary off) ${query.sql}`,
      query.parameters as unknown[],
    );
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    await client.query("rollback").catch(() => undefined);
    client.release();
  }
}

/**
 * The statements behind EvaluatePolicies, ApproveRelease and the outbox
 * relay, exactly as the server issues them (captured from Kysely).
 */
async function explainHotPaths(pool: pg.Pool, seeded: SeededProject): Promise<Record<string, string>> {
  const [evaluation] = await capture(pool, (trx) =>
    readEvaluationRows(trx, seeded.project, {
      releaseIntentId: seeded.intentId,
      sourceEnvironments: ["staging", "qa"],
      votesEnvironment: "prod",
    }),
  );
  const approve = await capture(pool, async (trx) => {
    const basis = await readVoteBasis(trx, seeded.project, seeded.intentId, "prod");
    if (basis === undefined) throw new Error("the seeded intent is missing");
    const event: ApprovalDecidedEvent = {
      event_id: randomUUID(),
      kind: APPROVAL_DECIDED,
      organisation: seeded.project.organisation,
      project: seeded.project.project,
      environment: "prod",
      release_intent_id: seeded.intentId,
      voter_user_id: "explain",
      voter_username: "explain",
      decision: "approved",
      decision_kind: "peer",
      current_approvals: basis.votes.length + 1,
      required_approvals: 3,
      passed: true,
      decided_at: new Date().toISOString(),
    };
    await writeVote(trx, {
      project: seeded.project,
      releaseIntentId: seeded.intentId,
      environment: "prod",
      vote: { userId: "explain", username: "explain", decision: "approved", decisionKind: "peer", decidedAt: new Date() },
      basisVersion: basis.version,
      outbox: outboxInsertFor(event, "bench.approvals"),
    });
  });
  const [claim] = await capture(pool, (trx) => claimUnpublished(trx, { limit: 100, leaseMs: 10_000, token: randomUUID() }));
  const { rows: recent } = await pool.query<{ event_id: string }>(
    `select event_id from outbox where payload->>'organisation' = $1 and payload->>'project' = $2
     order by created_at desc offset 10 limit 1`,
    [seeded.project.organisation, seeded.project.project],
  );
  const afterEventId = recent[0]?.event_id;
  if (afterEventId === undefined) throw new Error("no outbox event of the seeded project to resume after");
  const resume = await capture(pool, (trx) =>
    outboxReplay(trx, { project: seeded.project, environment: "prod", afterEventId, overlapMs: 60_000, limit: 1_001 }),
  );
  const plans: Record<string, string> = {};
  const named: [string, CompiledQuery | undefined][] = [
    ["EvaluatePolicies: intent, latest deploys and votes", evaluation],
    ["ApproveRelease: read the intent, its vote version and votes", approve.find((q) => !/^\s*with/.test(q.sql))],
    [
      "ApproveRelease: write the vote if the version held (bump, upsert, history, outbox, NOTIFY)",
      approve.find((q) => /^\s*with/.test(q.sql)),
    ],
    ["Outbox relay: claim unpublished events", claim],
    ["WatchApprovalEvents resume: the project's events from a minute before the last one seen", resume[1]],
  ];
  for (const [name, query] of named) {
    if (query === undefined) throw new Error(`no statement captured for ${name}`);
    plans[name] = await explain(pool, query);
  }
  return plans;
}

/** Item 4: EvaluatePolicies p50 with few vs many rows of decisions, deployments and intents. */
export async function benchScale(
  settings: BenchSettings,
  server: ServerProcess,
  seeded: SeededProject,
  databaseUrl: string,
): Promise<ScaleResult> {
  const smallRows = 1_000;
  const largeRows = settings.quick ? 5_000 : 1_000_000;
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const caller = await loadCaller(server.baseUrl, "bench-pipeline");
  const evaluate = evaluateSeeded(caller, seeded);
  const measure = async (rows: number, from: number): Promise<ScalePoint> => {
    const started = process.hrtime.bigint();
    await growTo(pool, seeded, from, rows);
    const loadSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const options = { callers: 1, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: 50 * settings.warmupPerCaller };
    const [medians] = await alternatingMedians(settings.runs, [() => runLoad(options, evaluate)]);
    return { rows, loadSeconds, evaluate: medians };
  };
  try {
    const small = await measure(smallRows, 0);
    const large = await measure(largeRows, smallRows);
    const plans = await explainHotPaths(pool, seeded);
    const seqScans = Object.entries(plans).flatMap(([name, plan]) =>
      plan
        .split("\n")
        .filter((line) => /Seq Scan/.test(line))
        .map((line) => `${name}: ${line.trim()}`),
    );
    return { small, large, plans, seqScans };
  } finally {
    await pool.end();
    caller.close();
  }
}
