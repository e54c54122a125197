import { approveSeeded, evaluateSeeded, healthCheck, loadCaller, registerIntents, type SeededProject } from "./fixtures.js";
import type { GrpcJsCaller } from "./grpc-js-caller.js";
import { alternatingMedians, type BenchSettings, type LoadResult, runLoad } from "./load.js";

/** One RPC and the health Check at the same callers, alternating runs. */
export interface RatioRow {
  readonly callers: number;
  readonly check: LoadResult;
  readonly rpc: LoadResult;
}

export type GateResult = { readonly [rpc in "evaluate" | "evaluateRules" | "approve"]: readonly RatioRow[] };

/** Intents the votes spread over (votes on one intent serialise on its row), and voters. */
const INTENTS = 64;
const VOTERS = 32;

/** `rpc` against `check` at each caller count, after JIT warm-up of both. */
async function ratioRows(settings: BenchSettings, rpc: (i: number) => Promise<unknown>, check: (i: number) => Promise<unknown>): Promise<RatioRow[]> {
  for (const call of [check, rpc]) await runLoad({ callers: 16, durationMs: settings.warmupMs, maxCalls: settings.maxCalls }, call);
  const rows: RatioRow[] = [];
  for (const callers of settings.callers) {
    const options = { callers, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: 2 * callers };
    const [c, r] = await alternatingMedians(settings.runs, [() => runLoad(options, check), () => runLoad(options, rpc)]);
    rows.push({ callers, check: c, rpc: r });
  }
  return rows;
}

/**
 * EvaluatePolicies (5 policies, 3 votes; again with the approval's three
 * rules, seeded `withRules`) and ApproveRelease (a vote with its
 * history row and outbox event) each against the same server's health Check,
 * from the same connections: the Check is the ceiling any RPC of this server
 * can reach on this machine.
 */
export async function benchGate(settings: BenchSettings, baseUrl: string, seeded: SeededProject, withRules: SeededProject): Promise<GateResult> {
  const pipeline = await loadCaller(baseUrl, "bench-pipeline");
  const evaluate = (project: SeededProject) => {
    const once = evaluateSeeded(pipeline, project);
    return async () => {
      if (!(await once()).allPassed) throw new Error(`the seeded intent of ${project.project.project} did not pass`);
    };
  };
  const evaluateRows = await ratioRows(settings, evaluate(seeded), healthCheck(pipeline));
  const evaluateRules = await ratioRows(settings, evaluate(withRules), healthCheck(pipeline));
  pipeline.close();

  // Each voter has its own connection, as each person would. Call i votes as
  // voter ⌊i/INTENTS⌋ on intent i mod INTENTS: first votes, then repeated ones.
  const intents = await registerIntents(baseUrl, seeded.project, INTENTS);
  const voters = await Promise.all(Array.from({ length: VOTERS }, (_, i) => loadCaller(baseUrl, `voter-${i}`)));
  const voter = (i: number) => voters[Math.floor(i / INTENTS) % VOTERS] as GrpcJsCaller;
  const approve = (i: number) => approveSeeded(voter(i), seeded, intents[i % INTENTS] as string);
  const check = (i: number) => healthCheck(voter(i))();
  try {
    return { evaluate: evaluateRows, evaluateRules, approve: await ratioRows(settings, approve, check) };
  } finally {
    for (const v of voters) v.close();
  }
}
