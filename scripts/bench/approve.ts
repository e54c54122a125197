import pg from "pg";
import { approveSeeded, BENCH_POOL_SIZE, loadCaller, registerIntents, type SeededProject } from "./fixtures.js";
import type { GrpcJsCaller } from "./grpc-js-caller.js";
import { healthCheck } from "./health-service.js";
import { alternatingMedians, type LoadResult, runLoad, runLoadOn } from "./load.js";
import type { ServerProcess } from "./server-process.js";
import type { BenchSettings } from "./settings.js";

/** Concurrent voters in the ApproveRelease comparison. */
export const APPROVE_CALLERS = 16;
/** Intents the votes spread over (votes on one intent serialise on its row lock). */
const INTENTS = 64;
const VOTERS = 32;

export interface ApproveResult {
  readonly callers: number;
  readonly approve: LoadResult;
  /** The same single-row vote upsert in a transaction from a bare `pg` pool of the server's size. */
  readonly ceiling: LoadResult;
  /** The same server's cheapest RPC (health Check, no database) from the same callers: the transport alone. */
  readonly transport: LoadResult;
}

/**
 * Item 2: ApproveRelease (a vote, its history row and its outbox event in one
 * transaction) against the database ceiling: the bare upsert transaction.
 */
export async function benchApprove(
  settings: BenchSettings,
  server: ServerProcess,
  seeded: SeededProject,
  databaseUrl: string,
): Promise<ApproveResult> {
  const intents = await registerIntents(server.baseUrl, seeded.project, INTENTS);
  const voters = await Promise.all(Array.from({ length: VOTERS }, (_, i) => loadCaller(server.baseUrl, `voter-${i}`)));
  const ceilingIntents = await registerIntents(server.baseUrl, seeded.project, INTENTS);
  // Call i votes as voter ⌊i/INTENTS⌋ on intent i mod INTENTS: first votes,
  // then (after INTENTS × VOTERS calls) changes of existing votes.
  const approve = (i: number) =>
    approveSeeded(voters[Math.floor(i / INTENTS) % VOTERS] as GrpcJsCaller, seeded, intents[i % INTENTS] as string);

  const pool = new pg.Pool({ connectionString: databaseUrl, max: BENCH_POOL_SIZE });
  const upsert = async (i: number) => {
    const client = await pool.connect();
    try {
      await client.query("begin");
      await client.query(
        `insert into approval_votes
           (release_intent_id, environment, user_id, username, decision, decision_kind, comment, first_cast_at, decided_at)
         values ($1, 'prod', $2, $2, 'approved', 'peer', null, now(), now())
         on conflict (release_intent_id, environment, user_id)
         do update set decision = excluded.decision, decision_kind = excluded.decision_kind, decided_at = excluded.decided_at`,
        [ceilingIntents[i % INTENTS], `voter-${Math.floor(i / INTENTS) % VOTERS}`],
      );
      await client.query("commit");
    } catch (err) {
      await client.query("rollback").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  };

  const options = {
    callers: APPROVE_CALLERS,
    durationMs: settings.loadMs,
    maxCalls: settings.maxCalls,
    warmupCalls: APPROVE_CALLERS * Math.min(4, settings.warmupPerCaller),
  };
  // What any RPC costs here: the bound under which ApproveRelease's ratio lives.
  const probe = await loadCaller(server.baseUrl, "bench-probe");
  const check = healthCheck(probe);

  // The vote path is new to this server (section 1 warmed only the evaluation): JIT warm-up first.
  await runLoad({ ...options, durationMs: settings.warmupMs }, approve);

  let medians: readonly [LoadResult, LoadResult, LoadResult];
  try {
    medians = await alternatingMedians(settings.runs, [
      () => runLoad(options, upsert),
      () => runLoadOn(server, options, check),
      () => runLoadOn(server, options, approve),
    ]);
  } finally {
    await pool.end();
    for (const caller of [...voters, probe]) caller.close();
  }
  const [ceiling, transport, approveMedians] = medians;
  return { callers: APPROVE_CALLERS, approve: approveMedians, ceiling, transport };
}
