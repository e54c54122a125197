import { openDatabase } from "../../src/db/database.js";
import { readEvaluationRows } from "../../src/db/evaluation.repository.js";
import { PolicyService } from "../../src/gen/forest/v1/policy_pb.js";
import { evaluateSeeded, loadCaller, ORG, SEED_SOAK_SOURCES, type SeededProject } from "./fixtures.js";
import { healthCheck } from "./health-service.js";
import { alternatingMedians, type LoadResult, runLoad, runLoadOn } from "./load.js";
import type { ServerProcess } from "./server-process.js";
import type { BenchSettings } from "./settings.js";

export interface EvaluateRow {
  readonly callers: number;
  readonly ceiling: LoadResult;
  readonly evaluate: LoadResult;
}

/**
 * EvaluatePolicies for an environment without policies, which reads nothing
 * from the database (the RPC without its facts), and the ceiling, at 1
 * caller, run after the table so its calls cannot shape the JIT state the
 * table measures.
 */
export interface WithoutReadPair {
  readonly ceiling: LoadResult;
  readonly evaluate: LoadResult;
}

export interface EvaluateResult {
  /** What the transport ceiling called. */
  readonly ceilingName: string;
  readonly rows: readonly EvaluateRow[];
  /**
   * EvaluatePolicies' one database read alone, from one caller outside the
   * server (the server's own repository function, pool and statement
   * preparation): what of the 1-caller latency is waiting for Postgres.
   */
  readonly databaseRead?: LoadResult;
  readonly withoutRead?: WithoutReadPair;
}

/**
 * Item 1: EvaluatePolicies (5 policies, 3 votes) against the cheapest RPC of
 * the same server, at each caller count; runs alternate so drift hits both.
 */
export async function benchEvaluate(
  settings: BenchSettings,
  server: ServerProcess,
  seeded: SeededProject,
  databaseUrl: string,
): Promise<EvaluateResult> {
  const caller = await loadCaller(server.baseUrl, "bench-pipeline");
  const evaluate = evaluateSeeded(caller, seeded);

  // This server's Check reuses a database ping up to a second old, so under
  // load the ceiling is the transport and the interceptors alone.
  let ceilingName =
    "`grpc.health.v1.Health/Check` (which reuses a database ping up to a second old: under load, transport and interceptors alone)";
  let ceiling: () => Promise<unknown> = healthCheck(caller);
  try {
    await ceiling();
  } catch {
    ceilingName = "`forest.v1.PolicyService/ListPolicies` on an empty project (health Check unavailable)";
    const empty = { organisation: ORG, project: "empty" };
    ceiling = () => caller.unary(PolicyService.method.listPolicies, { project: empty });
  }
  const answer = await evaluate();
  if (!answer.allPassed) throw new Error("bench evaluation does not pass");
  const unguarded = { project: seeded.project, targetEnvironment: "unguarded" };
  const evaluateWithoutRead = () => caller.unary(PolicyService.method.evaluatePolicies, unguarded);
  if ((await evaluateWithoutRead()).evaluations.length !== 0) throw new Error("bench project guards 'unguarded'");

  // Steady state, not JIT warm-up: a fresh server needs thousands of calls
  // of each path before V8 has optimised it (the 1-caller row comes first).
  for (const call of [ceiling, evaluate])
    await runLoad({ callers: 16, durationMs: settings.warmupMs, maxCalls: settings.maxCalls }, call);

  const rows: EvaluateRow[] = [];
  for (const callers of settings.callers) {
    const options = { callers, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: callers * settings.warmupPerCaller };
    const [ceilingMedians, evaluateMedians] = await alternatingMedians(settings.runs, [
      () => runLoadOn(server, options, ceiling),
      () => runLoadOn(server, options, evaluate),
    ]);
    rows.push({ callers, ceiling: ceilingMedians, evaluate: evaluateMedians });
  }
  const withoutRead = await pairAtOneCaller(settings, server, ceiling, evaluateWithoutRead);
  caller.close();
  return { ceilingName, rows, databaseRead: await benchDatabaseRead(settings, databaseUrl, seeded), withoutRead };
}

/** `ceiling` and `other` at 1 caller, alternating, after `other` is warmed up. */
async function pairAtOneCaller(
  settings: BenchSettings,
  server: ServerProcess,
  ceiling: () => Promise<unknown>,
  other: () => Promise<unknown>,
): Promise<WithoutReadPair> {
  await runLoad({ callers: 16, durationMs: settings.warmupMs, maxCalls: settings.maxCalls }, other);
  const options = { callers: 1, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: settings.warmupPerCaller };
  const [ceilingMedians, otherMedians] = await alternatingMedians(settings.runs, [
    () => runLoadOn(server, options, ceiling),
    () => runLoadOn(server, options, other),
  ]);
  return { ceiling: ceilingMedians, evaluate: otherMedians };
}

/** The evaluation read of the seeded intent, as the server issues it, at 1 caller. */
async function benchDatabaseRead(settings: BenchSettings, databaseUrl: string, seeded: SeededProject): Promise<LoadResult> {
  const database = await openDatabase({ databaseUrl, dataDir: "/nonexistent", poolSize: 1 });
  try {
    const reads = { releaseIntentId: seeded.intentId, sourceEnvironments: [...SEED_SOAK_SOURCES], votesEnvironment: "prod" };
    const read = () => readEvaluationRows(database.db, seeded.project, reads);
    const options = { callers: 1, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: 1_000 };
    const [medians] = await alternatingMedians(settings.runs, [() => runLoad(options, read)]);
    return medians;
  } finally {
    await database.destroy();
  }
}
