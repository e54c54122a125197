import { type ApprovalState, approvalState, type Vote } from "../approval/vote.js";
import { compileBranchPattern } from "./branch-pattern.js";
import type { Policy, PolicyKind } from "./policy.js";

/**
 * Everything the rules need to decide, fetched beforehand by the caller.
 * Evaluation itself does no I/O.
 */
export interface EvaluationFacts {
  readonly now: Date;
  readonly targetEnvironment: string;
  /** The request's branch, else the release intent's; undefined when unknown. */
  readonly branch?: string;
  /** Set when the request named a release intent. */
  readonly releaseIntentId?: string;
  /**
   * Latest successful deployment time per source environment: of the release
   * intent when one is given, else of the project.
   */
  readonly lastSuccessfulDeploy: ReadonlyMap<string, Date>;
  /** Current votes for the intent in the target environment (empty without an intent). */
  readonly votes: readonly Vote[];
}

export interface PolicyEvaluation {
  readonly policyName: string;
  readonly kind: PolicyKind;
  readonly passed: boolean;
  /** A sentence a person can act on. */
  readonly reason: string;
  readonly approval?: ApprovalState;
}

export interface EvaluationResult {
  readonly evaluations: readonly PolicyEvaluation[];
  /** True when every evaluation passed (true for none). */
  readonly allPassed: boolean;
}

/** The policies that apply: enabled, aimed at the target environment, in name order. */
export function applicablePolicies(policies: readonly Policy[], targetEnvironment: string): Policy[] {
  return policies
    .filter((p) => p.enabled && p.config.targetEnvironment === targetEnvironment)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function evaluatePolicies(policies: readonly Policy[], facts: EvaluationFacts): EvaluationResult {
  return evaluateApplicable(applicablePolicies(policies, facts.targetEnvironment), facts);
}

/** Evaluates policies already narrowed by `applicablePolicies` (callers that needed that list first). */
export function evaluateApplicable(applicable: readonly Policy[], facts: EvaluationFacts): EvaluationResult {
  const evaluations = applicable.map((p) => evaluatePolicy(p, facts));
  return { evaluations, allPassed: evaluations.every((e) => e.passed) };
}

function formatDuration(totalSeconds: number): string {
  return `${totalSeconds}s`;
}

export function evaluatePolicy(policy: Policy, facts: EvaluationFacts): PolicyEvaluation {
  const c = policy.config;
  const base = { policyName: policy.name, kind: c.kind };
  switch (c.kind) {
    case "soak_time": {
      const deployedAt = facts.lastSuccessfulDeploy.get(c.sourceEnvironment);
      const subject =
        facts.releaseIntentId !== undefined ? `release ${facts.releaseIntentId}` : "this project";
      if (deployedAt === undefined) {
        return {
          ...base,
          passed: false,
          reason: `soak time not met: no successful deploy of ${subject} to ${c.sourceEnvironment}; deploy to ${c.sourceEnvironment} first and wait ${formatDuration(c.durationSeconds)}`,
        };
      }
      const elapsed = Math.floor((facts.now.getTime() - deployedAt.getTime()) / 1000);
      if (elapsed >= c.durationSeconds) {
        return {
          ...base,
          passed: true,
          reason: `soak time met: ${formatDuration(elapsed)} since ${c.sourceEnvironment} deploy (required ${formatDuration(c.durationSeconds)})`,
        };
      }
      const remaining = c.durationSeconds - Math.max(elapsed, 0);
      return {
        ...base,
        passed: false,
        reason: `soak time not met: ${formatDuration(remaining)} remaining after ${c.sourceEnvironment} deploy`,
      };
    }
    case "branch_restriction": {
      if (facts.branch === undefined || facts.branch === "") {
        return {
          ...base,
          passed: false,
          reason: `branch unknown: pass branch or register the release intent with its branch (required pattern ${c.branchPattern})`,
        };
      }
      const matcher = compileBranchPattern(c.branchPattern);
      return matcher.matches(facts.branch)
        ? { ...base, passed: true, reason: `branch ${facts.branch} matches ${c.branchPattern}` }
        : {
            ...base,
            passed: false,
            reason: `branch ${facts.branch} does not match required pattern ${c.branchPattern}`,
          };
    }
    case "external_approval": {
      if (facts.releaseIntentId === undefined) {
        return {
          ...base,
          passed: false,
          reason: "approval required — no release intent",
          approval: approvalState(c.requiredApprovals, []),
        };
      }
      const state = approvalState(c.requiredApprovals, facts.votes);
      const rejections = state.decisions.length - state.currentApprovals;
      const note = rejections > 0 ? ` (${rejections} rejected)` : "";
      return state.currentApprovals >= c.requiredApprovals
        ? {
            ...base,
            passed: true,
            reason: `approved: ${state.currentApprovals}/${c.requiredApprovals}${note}`,
            approval: state,
          }
        : {
            ...base,
            passed: false,
            reason: `awaiting approval: ${state.currentApprovals}/${c.requiredApprovals}${note}`,
            approval: state,
          };
    }
  }
}
