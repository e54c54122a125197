import { type BreakGlassMark, breakGlassReason } from "../approval/break-glass-mark.js";
import { judgeApprovalPolicy, type RulesContext } from "../approval/rules.js";
import { type ApprovalState, approvalState, type Vote } from "../approval/vote.js";
import { compileBranchPattern } from "./branch-pattern.js";
import type { BranchRestrictionConfig, ExternalApprovalConfig, Policy, PolicyKind, SoakTimeConfig } from "./policy.js";
import { judgeSupersede, type SupersedeFacts } from "./supersede.js";

/**
 * Everything the rules need to decide, fetched beforehand by the caller.
 * Evaluation itself does no I/O.
 */
export interface EvaluationFacts {
  readonly now: Date;
  readonly targetEnvironment: string;
  /** The release intent's branch, else the request's; undefined when unknown. */
  readonly branch?: string;
  /**
   * Set when the request named a branch that differs from the intent's:
   * branch restrictions do not pass on a caller's word against the intent.
   */
  readonly requestBranchMismatch?: string;
  /** Set when the request named a release intent. */
  readonly releaseIntentId?: string;
  /**
   * Latest successful deployment time per source environment: of the release
   * intent when one is given, else of the project.
   */
  readonly lastSuccessfulDeploy: ReadonlyMap<string, Date>;
  /** Current votes for the intent in the target environment (empty without an intent). */
  readonly votes: readonly Vote[];
  /** The directory and the intent's parties, when an applicable approval policy has rules. */
  readonly rules?: RulesContext;
  /** The newest break-glass on the intent for the target environment: every approval policy passes. */
  readonly breakGlass?: BreakGlassMark;
  /** Newer intents and the target deployment, when a supersede policy applies to a named intent. */
  readonly supersede?: SupersedeFacts;
  /**
   * Set when the intent's newest approval request in the target environment
   * ended other than approved (or is past its expiry): every approval policy
   * fails with this reason (what happened, what to do), break-glass aside.
   */
  readonly requestBlock?: string;
}

export interface PolicyEvaluation {
  readonly policyName: string;
  /** Undefined for a check that is not a policy (declared environments): POLICY_TYPE_UNSPECIFIED. */
  readonly kind: PolicyKind | undefined;
  readonly passed: boolean;
  /** A sentence a person can act on. */
  readonly reason: string;
  readonly approval?: ApprovalState;
}

export interface EvaluationResult {
  readonly evaluations: readonly PolicyEvaluation[];
  /** True when every evaluation passed (true for none). */
  readonly allPassed: boolean;
  /** The intent's approval request in the target environment after the evaluation (set by the use case). */
  readonly request?: { readonly id: string; readonly state: string };
}

// The per-request hot path (EvaluatePolicies, and the gate check of every
// vote): plain loops, no closures or intermediate arrays per call.

const byName = (a: Policy, b: Policy): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The policies that apply: enabled, aimed at the target environment, in name order. */
export function applicablePolicies(policies: readonly Policy[], targetEnvironment: string): Policy[] {
  const applicable: Policy[] = [];
  for (const p of policies) if (p.enabled && p.config.targetEnvironment === targetEnvironment) applicable.push(p);
  return applicable.sort(byName);
}

export function evaluatePolicies(policies: readonly Policy[], facts: EvaluationFacts): EvaluationResult {
  return evaluateApplicable(applicablePolicies(policies, facts.targetEnvironment), facts);
}

/** Evaluates policies already narrowed by `applicablePolicies` (callers that needed that list first). */
export function evaluateApplicable(applicable: readonly Policy[], facts: EvaluationFacts): EvaluationResult {
  const evaluations: PolicyEvaluation[] = [];
  let allPassed = true;
  for (const policy of applicable) {
    const evaluation = evaluatePolicy(policy, facts);
    evaluations.push(evaluation);
    if (!evaluation.passed) allPassed = false;
  }
  return { evaluations, allPassed };
}

export function evaluatePolicy(policy: Policy, facts: EvaluationFacts): PolicyEvaluation {
  const c = policy.config;
  switch (c.kind) {
    case "soak_time":
      return evaluateSoakTime(policy.name, c, facts);
    case "branch_restriction":
      return evaluateBranchRestriction(policy.name, c, facts);
    case "external_approval":
      return evaluateExternalApproval(policy.name, c, facts);
    case "supersede_pending": {
      const { passed, reason } = judgeSupersede(policy.name, c, facts.releaseIntentId, facts.supersede);
      return evaluation(policy.name, c.kind, passed, reason);
    }
  }
}

/**
 * Every evaluation is built here, all five fields in one order, so V8 sees a
 * single object shape whatever the policy kind. Spreading a shared base
 * instead (`{ ...base, passed, reason }`) measured about ten times slower for
 * the whole decision (scripts/bench/decision.ts).
 */
function evaluation(
  policyName: string,
  kind: PolicyKind,
  passed: boolean,
  reason: string,
  approval?: ApprovalState,
): PolicyEvaluation {
  return { policyName, kind, passed, reason, approval };
}

function formatDuration(totalSeconds: number): string {
  return `${totalSeconds}s`;
}

function evaluateSoakTime(name: string, c: SoakTimeConfig, facts: EvaluationFacts): PolicyEvaluation {
  const deployedAt = facts.lastSuccessfulDeploy.get(c.sourceEnvironment);
  if (deployedAt === undefined) {
    const subject = facts.releaseIntentId !== undefined ? `release ${facts.releaseIntentId}` : "this project";
    return evaluation(
      name,
      c.kind,
      false,
      `soak time not met: no successful deploy of ${subject} to ${c.sourceEnvironment}; deploy to ${c.sourceEnvironment} first and wait ${formatDuration(c.durationSeconds)}`,
    );
  }
  const elapsed = Math.floor((facts.now.getTime() - deployedAt.getTime()) / 1000);
  if (elapsed >= c.durationSeconds)
    return evaluation(
      name,
      c.kind,
      true,
      `soak time met: ${formatDuration(elapsed)} since ${c.sourceEnvironment} deploy (required ${formatDuration(c.durationSeconds)})`,
    );
  // A deploy in the future (clock skew) counts as just deployed.
  const remaining = c.durationSeconds - Math.max(elapsed, 0);
  return evaluation(
    name,
    c.kind,
    false,
    `soak time not met: ${formatDuration(remaining)} remaining after ${c.sourceEnvironment} deploy`,
  );
}

function evaluateBranchRestriction(
  name: string,
  c: BranchRestrictionConfig,
  facts: EvaluationFacts,
): PolicyEvaluation {
  const branch = facts.branch;
  if (facts.requestBranchMismatch !== undefined)
    return evaluation(
      name,
      c.kind,
      false,
      `request branch ${facts.requestBranchMismatch} differs from release intent ${facts.releaseIntentId}'s branch ${branch}; the intent's branch is what counts`,
    );
  if (branch === undefined || branch === "")
    return evaluation(
      name,
      c.kind,
      false,
      `branch unknown: pass branch or register the release intent with its branch (required pattern ${c.branchPattern})`,
    );
  return compileBranchPattern(c.branchPattern).matches(branch)
    ? evaluation(name, c.kind, true, `branch ${branch} matches ${c.branchPattern}`)
    : evaluation(name, c.kind, false, `branch ${branch} does not match required pattern ${c.branchPattern}`);
}

const NO_VOTES: readonly Vote[] = [];

/**
 * max_approval_age_seconds: approvals decided longer ago than it (server
 * clock) stop counting; rejections stay. Without the option every vote counts.
 */
function splitByAge(
  c: ExternalApprovalConfig,
  votes: readonly Vote[],
  now: Date,
): { counted: readonly Vote[]; lapsed: readonly Vote[] } {
  const max = c.maxApprovalAgeSeconds;
  if (max === undefined || max <= 0) return { counted: votes, lapsed: NO_VOTES };
  const oldest = now.getTime() - max * 1000;
  const counted: Vote[] = [];
  const lapsed: Vote[] = [];
  for (const v of votes) (v.decision === "approved" && v.decidedAt.getTime() < oldest ? lapsed : counted).push(v);
  return { counted, lapsed };
}

function evaluateExternalApproval(
  name: string,
  c: ExternalApprovalConfig,
  facts: EvaluationFacts,
): PolicyEvaluation {
  if (facts.releaseIntentId === undefined)
    return evaluation(
      name,
      c.kind,
      false,
      "approval required — no release intent",
      approvalState(c.requiredApprovals, []),
    );
  const { counted, lapsed } = splitByAge(c, facts.votes, facts.now);
  const { state, passed, rulesSummary } = judgeApprovalPolicy(c, counted, facts.rules, facts.breakGlass);
  if (facts.breakGlass !== undefined) return evaluation(name, c.kind, true, breakGlassReason(facts.breakGlass), state);
  if (facts.requestBlock !== undefined) return evaluation(name, c.kind, false, facts.requestBlock, state);
  let rejections = 0;
  for (const v of state.decisions) if (v.decision !== "approved") rejections++;
  const note = rejections > 0 ? ` (${rejections} rejected)` : "";
  const aged =
    lapsed.length === 0
      ? ""
      : `; ${lapsed.map((v) => `approval by ${v.userId} lapsed at ${new Date(v.decidedAt.getTime() + (c.maxApprovalAgeSeconds ?? 0) * 1000).toISOString()}`).join(", ")} (max approval age ${c.maxApprovalAgeSeconds}s)`;
  const tally = `${state.currentApprovals}/${c.requiredApprovals}${note}${rulesSummary === undefined ? "" : `; ${rulesSummary}`}${aged}`;
  return passed
    ? evaluation(name, c.kind, true, `approved: ${tally}`, state)
    : evaluation(name, c.kind, false, `awaiting approval: ${tally}`, state);
}
