import { NotFoundError, PermissionDeniedError } from "../errors.js";
import type { ExternalApprovalConfig, Policy, ProjectRef } from "../policy/policy.js";
import type { BreakGlassMark } from "./break-glass-mark.js";
import type { RuleDirectory } from "./eligibility.js";
import { describeJudgement, type IntentParties, judgeRules } from "./judge-rules.js";
import { type ApprovalState, approvalState, type Decision, type DecisionKind, type Vote } from "./vote.js";

/** Longest comment a vote may carry, in characters. */
export const COMMENT_MAX = 2000;

/**
 * `force_bypass` is an admin's act: refused for anyone else (fail closed,
 * author or not). Part of authorisation, so it is checked before the vote's
 * use case looks anything up.
 */
export function authorizeBypass(v: { readonly forceBypass: boolean; readonly voterId: string; readonly voterIsAdmin: boolean }): void {
  if (v.forceBypass && !v.voterIsAdmin)
    throw new PermissionDeniedError(
      `force_bypass: only an organisation admin may bypass the four-eyes rule (${v.voterId} is not an admin)`,
    );
}

export interface VoteRequest {
  readonly decision: Decision;
  readonly forceBypass: boolean;
  readonly voterId: string;
  readonly voterIsAdmin: boolean;
  readonly intentId: string;
  readonly authorId: string;
  /** Token subject of whoever registered the intent. */
  readonly registrantId: string;
  /** True when a person (not a service) registered it. */
  readonly registrantIsUser: boolean;
}

/**
 * The four-eyes rule. Returns the decision kind of an allowed vote, throws
 * PermissionDeniedError otherwise:
 * - `force_bypass` needs an organisation admin (fail closed, author or not);
 * - the author may not approve their own release intent, and neither may a
 *   person who registered it on the author's behalf (or four eyes would be
 *   two, with a proxy author), unless an admin passes `force_bypass`, which
 *   is recorded as `admin_override`; a service registrant (a pipeline) is
 *   no such person, and services cannot vote anyway;
 * - `force_bypass` from anyone else, and any rejection, is a `peer` vote.
 */
export function decisionKindFor(v: VoteRequest): DecisionKind {
  authorizeBypass(v);
  if (v.decision !== "approved") return "peer";
  if (v.voterId === v.authorId) {
    if (!v.forceBypass)
      throw new PermissionDeniedError(
        `${v.voterId} is the author of release intent ${v.intentId} and cannot approve it; an organisation admin author may pass force_bypass`,
      );
    return "admin_override";
  }
  if (v.registrantIsUser && v.voterId === v.registrantId) {
    if (!v.forceBypass)
      throw new PermissionDeniedError(
        `${v.voterId} registered release intent ${v.intentId} for author ${v.authorId} and cannot approve it (four eyes cover the registrant); an organisation admin may pass force_bypass`,
      );
    return "admin_override";
  }
  return "peer";
}

/** The approval policies that gate `environment`, already filtered to enabled ones. */
export function approvalPoliciesFor(policies: readonly Policy[], environment: string): Policy[] {
  return policies.filter(
    (p) => p.enabled && p.config.kind === "external_approval" && p.config.targetEnvironment === environment,
  );
}

/** The approval policies that gate `environment`; NOT_FOUND when there are none (nothing to vote on). */
export function gatePolicies(all: readonly Policy[], project: ProjectRef, environment: string): Policy[] {
  const gate = approvalPoliciesFor(all, environment);
  if (gate.length === 0)
    throw new NotFoundError(
      `target_environment: no enabled external approval policy for ${environment} in ${project.organisation}/${project.project}`,
    );
  return gate;
}

/** What approval rules are judged with; absent where no policy has rules. */
export interface RulesContext {
  readonly directory: RuleDirectory;
  readonly parties: IntentParties;
}

/** One approval policy judged: its state, whether it passes, and (with rules) the per-rule sentence. */
export interface PolicyApproval {
  readonly state: ApprovalState;
  readonly passed: boolean;
  /** "security 1/1, sre 0/2 (may still approve: …)"; undefined for a policy without rules. */
  readonly rulesSummary?: string;
}

/**
 * Judges one approval policy. Without rules: Forest's count of approvals.
 * With rules: eligibility judged now, every rule's count, and the policy's
 * own count of eligible approvals. Rules without a context fail closed.
 */
export function judgeApprovalPolicy(
  config: ExternalApprovalConfig,
  votes: readonly Vote[],
  rules: RulesContext | undefined,
  breakGlass?: BreakGlassMark,
): PolicyApproval {
  if (config.rules === undefined || config.rules.length === 0) {
    const state = approvalState(config.requiredApprovals, votes, breakGlass);
    return { state, passed: breakGlass !== undefined || state.currentApprovals >= config.requiredApprovals };
  }
  if (rules === undefined)
    return {
      state: approvalState(config.requiredApprovals, [], breakGlass),
      passed: breakGlass !== undefined,
      rulesSummary: "approval rules could not be judged",
    };
  const j = judgeRules(config, votes, rules.directory, rules.parties);
  return {
    state: {
      requiredApprovals: config.requiredApprovals,
      currentApprovals: j.countedApprovals,
      decisions: votes,
      ruleProgress: j.progress,
      breakGlass,
    },
    passed: breakGlass !== undefined || j.passed,
    rulesSummary: describeJudgement(j),
  };
}

export interface GateState {
  /** The strictest policy's view (highest required_approvals): what vote responses show. */
  readonly strictest: ApprovalState;
  /** True when every approval policy for the environment is satisfied. */
  readonly passed: boolean;
}

/**
 * Evaluates every approval policy against the same votes. Responses show the
 * strictest policy (highest threshold; the first on a tie);
 * the gate passes only when every policy does. A break-glass opens all of them.
 */
export function gateState(
  approvalPolicies: readonly Policy[],
  votes: readonly Vote[],
  rules?: RulesContext,
  breakGlass?: BreakGlassMark,
): GateState {
  let strictest: ApprovalState | undefined;
  let passed = true;
  for (const p of approvalPolicies) {
    if (p.config.kind !== "external_approval") continue;
    const judged = judgeApprovalPolicy(p.config, votes, rules, breakGlass);
    if (!judged.passed) passed = false;
    if (strictest === undefined || judged.state.requiredApprovals > strictest.requiredApprovals) strictest = judged.state;
  }
  return { strictest: strictest ?? approvalState(0, votes, breakGlass), passed };
}

/** True when some policy of the gate has approval rules (the directory must be read). */
export function gateHasRules(approvalPolicies: readonly Policy[]): boolean {
  return approvalPolicies.some((p) => p.config.kind === "external_approval" && (p.config.rules?.length ?? 0) > 0);
}
