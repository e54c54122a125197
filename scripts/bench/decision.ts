import { Bench } from "tinybench";
import type { Vote } from "../../src/approval/vote.js";
import { compileBranchPattern } from "../../src/policy/branch-pattern.js";
import { type EvaluationFacts, evaluatePolicies } from "../../src/policy/evaluate.js";
import type { Policy, PolicyConfig } from "../../src/policy/policy.js";
import type { BenchSettings } from "./settings.js";

export interface DecisionResult {
  /** Median microseconds per decision (5 policies). */
  readonly medianMicros: number;
  readonly p99Micros: number;
  readonly samples: number;
  readonly allPassed: boolean;
}

/** Item 6: the pure decision, 5 compiled policies against in-memory facts, no I/O. */
export async function benchDecision(settings: BenchSettings): Promise<DecisionResult> {
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
  const allPassed = evaluatePolicies(policies, facts).allPassed;
  const bench = new Bench({ time: settings.quick ? 200 : 2_000, warmupTime: settings.quick ? 50 : 500 });
  let sink = 0;
  bench.add("evaluatePolicies: 5 policies", () => {
    sink += evaluatePolicies(policies, facts).evaluations.length;
  });
  await bench.run();
  const task = bench.tasks[0];
  const result = task?.result as { latency?: { p50: number; p99: number; samplesCount?: number }; state?: string } | undefined;
  const latency = result?.latency;
  if (latency === undefined || sink === 0) throw new Error(`tinybench produced no latency: ${JSON.stringify(result)}`);
  return {
    medianMicros: latency.p50 * 1_000,
    p99Micros: latency.p99 * 1_000,
    samples: latency.samplesCount ?? Number.NaN,
    allPassed,
  };
}
