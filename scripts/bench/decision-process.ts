/**
 * One run of the pure-decision micro-benchmark, in a process of its own
 * (spawned by decision.ts): a fresh heap and fresh JIT state, so the number
 * is the decision's and not the leftovers of whatever ran before in the
 * same process. Prints one JSON `DecisionMeasurement` line on stdout.
 *
 *   node dist/scripts/bench/decision-process.js --warmup-ms 1000 --time-ms 2000
 */
import { parseArgs } from "node:util";
import { Bench } from "tinybench";
import type { Vote } from "../../src/approval/vote.js";
import { compileBranchPattern } from "../../src/policy/branch-pattern.js";
import { type EvaluationFacts, evaluatePolicies } from "../../src/policy/evaluate.js";
import type { Policy, PolicyConfig } from "../../src/policy/policy.js";

export interface DecisionMeasurement {
  /** Median microseconds per decision (one `evaluatePolicies` call over 5 policies). */
  readonly medianMicros: number;
  readonly p99Micros: number;
  readonly samples: number;
  /** Whether the fixture's facts pass all five policies (they should). */
  readonly allPassed: boolean;
}

/** At least this many uncounted calls, however short the warm-up time: enough for V8 to optimise the path. */
const WARMUP_CALLS_MIN = 20_000;

/** 5 policies on `prod` (2 soak, 2 branch, 1 approval) and facts that pass them all. */
function fixture(): { policies: readonly Policy[]; facts: EvaluationFacts } {
  const project = { organisation: "bench", project: "decision" };
  const at = new Date("2026-01-01T00:00:00Z");
  const policy = (name: string, config: PolicyConfig): Policy => ({
    id: name,
    project,
    name,
    enabled: true,
    config,
    createdAt: at,
    updatedAt: at,
  });
  const policies = [
    policy("soak-staging", { kind: "soak_time", sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 600 }),
    policy("soak-qa", { kind: "soak_time", sourceEnvironment: "qa", targetEnvironment: "prod", durationSeconds: 300 }),
    policy("main-only", { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^main$" }),
    policy("no-wip", { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^(main|release/[0-9.]+)$" }),
    policy("three-approvals", { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: 3 }),
  ];
  // What the policy cache does on load: compile the branch patterns once.
  for (const p of policies) if (p.config.kind === "branch_restriction") compileBranchPattern(p.config.branchPattern);
  const vote = (userId: string): Vote => ({
    userId,
    username: userId,
    decision: "approved",
    decisionKind: "peer",
    decidedAt: at,
  });
  const anHourAgo = new Date(at.getTime() - 3_600_000);
  const facts: EvaluationFacts = {
    now: at,
    targetEnvironment: "prod",
    branch: "main",
    releaseIntentId: "0b5e5a3c-6c1f-4b47-9d0e-2f7f5d8f2a10",
    lastSuccessfulDeploy: new Map([
      ["staging", anHourAgo],
      ["qa", anHourAgo],
    ]),
    votes: [vote("ann"), vote("bob"), vote("cy")],
  };
  return { policies, facts };
}

function measure(warmupMs: number, timeMs: number): DecisionMeasurement {
  const { policies, facts } = fixture();
  const allPassed = evaluatePolicies(policies, facts).allPassed;
  // runSync: one timed call per sample with no promise per iteration (run()
  // awaits each one), so the measured loop allocates only what the decision does.
  const bench = new Bench({ time: timeMs, warmupTime: warmupMs, warmupIterations: WARMUP_CALLS_MIN, throws: true });
  let sink = 0;
  bench.add("evaluatePolicies: 5 policies", () => {
    // Consumed so the call cannot be optimised away.
    sink += evaluatePolicies(policies, facts).evaluations.length;
  });
  bench.runSync();
  const result = bench.tasks[0]?.result;
  if (result?.state !== "completed" || sink === 0)
    throw new Error(`tinybench did not complete: ${JSON.stringify(result)}`);
  return {
    medianMicros: result.latency.p50 * 1_000,
    p99Micros: result.latency.p99 * 1_000,
    samples: result.latency.samplesCount,
    allPassed,
  };
}

const { values } = parseArgs({
  options: {
    "warmup-ms": { type: "string", default: "1000" },
    "time-ms": { type: "string", default: "2000" },
  },
});
function milliseconds(flag: string, value: string): number {
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`--${flag} must be a positive number of milliseconds, got ${value}`);
  return ms;
}
const measurement = measure(
  milliseconds("warmup-ms", values["warmup-ms"]),
  milliseconds("time-ms", values["time-ms"]),
);
process.stdout.write(`${JSON.stringify(measurement)}\n`);
