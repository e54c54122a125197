import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { Bench } from "tinybench";
import type { Vote } from "../../src/approval/vote.js";
import { compileBranchPattern } from "../../src/policy/branch-pattern.js";
import { type EvaluationFacts, evaluatePolicies } from "../../src/policy/evaluate.js";
import type { Policy, PolicyConfig } from "../../src/policy/policy.js";
import { type BenchSettings, median } from "./load.js";

const AT = new Date("2026-01-01T00:00:00Z");
const HOUR_AGO = new Date(AT.getTime() - 3_600_000);

/** The seeded project's 5 policies on prod, as the policy cache holds them (branch patterns compiled). */
function releasegatePolicies(): Policy[] {
  const policy = (name: string, config: PolicyConfig): Policy => ({ id: name, project: { organisation: "bench", project: "decision" }, name, enabled: true, config, createdAt: AT, updatedAt: AT });
  const policies = [
    policy("soak-staging", { kind: "soak_time", sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 600 }),
    policy("soak-qa", { kind: "soak_time", sourceEnvironment: "qa", targetEnvironment: "prod", durationSeconds: 300 }),
    policy("main-only", { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^main$" }),
    policy("no-wip", { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^(main|release/[0-9.]+)$" }),
    policy("three-approvals", { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: 3 }),
  ];
  for (const p of policies) if (p.config.kind === "branch_restriction") compileBranchPattern(p.config.branchPattern);
  return policies;
}

/**
 * The same 5 rules in Cedar: a `permit` for deploys to prod and one `forbid
 * … unless` per rule, so a request is allowed exactly when no rule fails,
 * and the forbids that fired name the failed rules.
 */
export const CEDAR_POLICIES: Readonly<Record<string, string>> = {
  deploy: `permit (principal, action == Action::"deploy", resource == Environment::"prod");`,
  "soak-staging": `forbid (principal, action, resource == Environment::"prod") unless { context.soakSeconds has staging && context.soakSeconds.staging >= 600 };`,
  "soak-qa": `forbid (principal, action, resource == Environment::"prod") unless { context.soakSeconds has qa && context.soakSeconds.qa >= 300 };`,
  "main-only": `forbid (principal, action, resource == Environment::"prod") unless { context.branch == "main" };`,
  "no-wip": `forbid (principal, action, resource == Environment::"prod") unless { context.branch == "main" || context.branch like "release/*" };`,
  "three-approvals": `forbid (principal, action, resource == Environment::"prod") unless { context.approvals >= 3 };`,
};
const CEDAR_SET_ID = "releasegate-bench";

/** One Cedar request from the facts releasegate's rules get: Cedar has no clock, so elapsed seconds go in the context. */
function cedarRequest(facts: EvaluationFacts) {
  const soakSeconds: Record<string, number> = {};
  for (const [env, at] of facts.lastSuccessfulDeploy) soakSeconds[env] = Math.floor((facts.now.getTime() - at.getTime()) / 1000);
  let approvals = 0;
  for (const v of facts.votes) if (v.decision === "approved") approvals++;
  return {
    principal: { type: "Pipeline", id: "bench" },
    action: { type: "Action", id: "deploy" },
    resource: { type: "Environment", id: facts.targetEnvironment },
    context: { soakSeconds, branch: facts.branch ?? "", approvals },
    entities: [],
  };
}

/** The rules Cedar failed (the forbids that fired), sorted. */
function cedarFailed(answer: cedar.AuthorizationAnswer): string[] {
  if (answer.type !== "success" || answer.response.diagnostics.errors.length > 0) throw new Error(`cedar: ${JSON.stringify(answer)}`);
  return answer.response.decision === "allow" ? [] : [...answer.response.diagnostics.reason].sort();
}

function facts(over: Partial<EvaluationFacts> = {}): EvaluationFacts {
  const votes = ["ann", "bob", "cy"].map((userId): Vote => ({ userId, username: userId, decision: "approved", decisionKind: "peer", decidedAt: AT }));
  const lastSuccessfulDeploy = new Map([["staging", HOUR_AGO], ["qa", HOUR_AGO]]);
  return { now: AT, targetEnvironment: "prod", branch: "main", releaseIntentId: "intent", lastSuccessfulDeploy, votes, ...over };
}

/** Facts on which both sets must fail exactly the same rules: the equivalence, checked before timing. */
const EQUIVALENCE_CASES = [
  ...[facts(), facts({ branch: "release/1.2" }), facts({ branch: "feature/x" }), facts({ votes: facts().votes.slice(0, 2) })],
  facts({ lastSuccessfulDeploy: new Map([["staging", new Date(AT.getTime() - 400_000)], ["qa", HOUR_AGO]]) }),
  facts({ lastSuccessfulDeploy: new Map([["qa", HOUR_AGO]]) }),
];

export interface DecisionResult {
  /** Median nanoseconds per decision, per evaluator (the median of the rounds' medians). */
  readonly ns: { readonly releasegate: number; readonly cedarPreparsed: number; readonly cedarParsing: number };
  readonly cedarVersion: string;
  readonly equivalenceCases: number;
  readonly rounds: number;
}

/**
 * The pure decision next to Cedar's evaluator on the same rules and facts, in
 * this process, interleaved per round (tinybench; a sample times `batch`
 * decisions, since one is near a timer read's resolution).
 */
export function benchDecision(settings: BenchSettings): DecisionResult {
  const policies = releasegatePolicies();
  const prepared = cedar.preparsePolicySet(CEDAR_SET_ID, { staticPolicies: CEDAR_POLICIES });
  if (prepared.type !== "success") throw new Error(`cedar policies do not parse: ${JSON.stringify(prepared.errors)}`);
  const stateful = (f: EvaluationFacts) => cedar.statefulIsAuthorized({ ...cedarRequest(f), preparsedPolicySetId: CEDAR_SET_ID });
  const parsing = (f: EvaluationFacts) => cedar.isAuthorized({ ...cedarRequest(f), policies: { staticPolicies: CEDAR_POLICIES } });
  for (const f of EQUIVALENCE_CASES) {
    const ours = evaluatePolicies(policies, f).evaluations.filter((e) => !e.passed).map((e) => e.policyName).sort().join();
    for (const theirs of [cedarFailed(stateful(f)), cedarFailed(parsing(f))])
      if (theirs.join() !== ours) throw new Error(`the Cedar set is not equivalent on ${JSON.stringify(cedarRequest(f).context)}: releasegate fails [${ours}], Cedar [${theirs}]`);
  }
  const passing = facts();
  let sink = 0;
  const tasks = {
    releasegate: { batch: 100, decide: () => evaluatePolicies(policies, passing).evaluations.length },
    cedarPreparsed: { batch: 10, decide: () => stateful(passing).type.length },
    cedarParsing: { batch: 1, decide: () => parsing(passing).type.length },
  };
  const rounds = settings.quick ? 1 : settings.runs;
  const perRound = { releasegate: [] as number[], cedarPreparsed: [] as number[], cedarParsing: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    const time = settings.quick ? 100 : 1_000;
    const bench = new Bench({ time, warmupTime: time / 2, iterations: 10, warmupIterations: 10, throws: true });
    for (const [name, { batch, decide }] of Object.entries(tasks))
      bench.add(name, () => {
        for (let i = 0; i < batch; i++) sink += decide();
      });
    bench.runSync();
    for (const name of Object.keys(tasks) as (keyof typeof tasks)[]) {
      const result = bench.getTask(name)?.result;
      if (result?.state !== "completed") throw new Error(`tinybench did not complete ${name}`);
      perRound[name].push((result.latency.p50 * 1e6) / tasks[name].batch);
    }
  }
  if (sink === 0) throw new Error("no decision was made");
  const ns = { releasegate: median(perRound.releasegate), cedarPreparsed: median(perRound.cedarPreparsed), cedarParsing: median(perRound.cedarParsing) };
  return { ns, cedarVersion: cedar.getCedarVersion(), equivalenceCases: EQUIVALENCE_CASES.length, rounds };
}
