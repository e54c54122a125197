import { type ApprovalRule, type ExternalApprovalConfig, ruleLabel } from "../policy/policy.js";
import { isEligible, isOpenEnded, knownEligible, type RuleDirectory, whyNotEligible } from "./eligibility.js";
import { decideRules, type MatchRule, mayStillApprove, unsatisfiableRules } from "./rule-matching.js";
import type { Vote } from "./vote.js";
import { MAY_STILL_APPROVE_SHOWN } from "./voter-directory.js";

/** Progress of one rule, as reasons and ExternalApprovalState.rule_progress show it. */
export interface RuleProgress {
  /** `group:sre` or `role:maintainer`. */
  readonly rule: string;
  readonly requiredApprovals: number;
  readonly currentApprovals: number;
  readonly approvedBy: readonly string[];
  readonly mayStillApprove: readonly string[];
  readonly openEnded: boolean;
}

/** The intent's four-eyes parties: they may never count. */
export interface IntentParties {
  readonly authorId: string;
  /** Set when a person (not a service) registered the intent. */
  readonly registrantId?: string;
}

export interface RulesJudgement {
  /** Every rule met and the policy's own count reached. */
  readonly passed: boolean;
  /** Approvals from voters eligible for at least one rule now. */
  readonly countedApprovals: number;
  readonly progress: readonly RuleProgress[];
  /** Approvals that counted for no rule, and why. */
  readonly lapsed: readonly { readonly userId: string; readonly why: string }[];
  /** Rules that cannot be met by the people who remain, with the numbers. */
  readonly unmeetable: readonly string[];
}

function matchRule(rule: ApprovalRule, votersById: ReadonlyMap<string, Vote>, dir: RuleDirectory): MatchRule {
  return {
    required: rule.requiredApprovals,
    isEligible: (id) => {
      const v = votersById.get(id);
      return isEligible(rule, { userId: id, tokenRole: v?.tokenRole, idpGroups: v?.idpGroups ?? [] }, dir);
    },
    openEnded: isOpenEnded(rule, dir),
  };
}

/**
 * Judges an approval policy with rules against the current votes, with
 * eligibility judged now (a member removed, or a grant expired, no longer
 * counts). The policy passes when the approvals of voters eligible for some
 * rule reach `required_approvals` and every rule is met (shared or distinct
 * semantics, see rule-matching.ts).
 */
export function judgeRules(
  config: ExternalApprovalConfig,
  votes: readonly Vote[],
  dir: RuleDirectory,
  parties: IntentParties,
): RulesJudgement {
  const rules = config.rules ?? [];
  const distinct = config.distinctApprovers === true;
  const votersById = new Map(votes.map((v) => [v.userId, v]));
  const matchRules = rules.map((r) => matchRule(r, votersById, dir));
  const approvers = votes.filter((v) => v.decision === "approved").map((v) => v.userId);
  const eligibleApprovers: string[] = [];
  const lapsed: { userId: string; why: string }[] = [];
  for (const id of approvers) {
    if (matchRules.some((r) => r.isEligible(id))) eligibleApprovers.push(id);
    else lapsed.push({ userId: id, why: whyNotEligible(rules) });
  }
  const decision = decideRules(matchRules, eligibleApprovers, distinct);
  const parties_ = new Set([parties.authorId, ...(parties.registrantId !== undefined ? [parties.registrantId] : [])]);
  const known = [...new Set(rules.flatMap((r) => knownEligible(r, dir)))].sort().filter((id) => !parties_.has(id));
  const voted = new Set(votes.map((v) => v.userId));
  const candidates = known.filter((id) => !voted.has(id));
  const may = mayStillApprove(matchRules, eligibleApprovers, candidates, distinct);
  const progress = rules.map(
    (rule, r): RuleProgress => ({
      rule: ruleLabel(rule),
      requiredApprovals: rule.requiredApprovals,
      currentApprovals: decision.rules[r]!.counted.length,
      approvedBy: decision.rules[r]!.counted,
      mayStillApprove: may[r]!,
      openEnded: matchRules[r]!.openEnded === true || dir.cappedRules?.has(ruleLabel(rule)) === true,
    }),
  );
  // Who could still make it: everyone eligible who approved, plus every known person but the
  // author and registrant (a rejection can still change).
  const pool = [...new Set([...eligibleApprovers, ...known])];
  const unmeetable = decision.passed
    ? []
    : unsatisfiableRules(matchRules, pool, distinct).map((r) => {
        const eligibleInPool = pool.filter((id) => matchRules[r]!.isEligible(id)).length;
        return `${ruleLabel(rules[r]!)} cannot be met: too few eligible people remain besides the author and registrant (needs ${rules[r]!.requiredApprovals}, ${eligibleInPool} eligible${distinct ? " and not needed by another rule" : ""})`;
      });
  return {
    passed: decision.passed && eligibleApprovers.length >= config.requiredApprovals,
    countedApprovals: eligibleApprovers.length,
    progress,
    lapsed,
    unmeetable,
  };
}

/** "u1, u2, u3, u4, u5 and 7 more": the first MAY_STILL_APPROVE_SHOWN ids of `ids`. */
function listNames(ids: readonly string[]): string {
  const shown = ids.slice(0, MAY_STILL_APPROVE_SHOWN).join(", ");
  return ids.length > MAY_STILL_APPROVE_SHOWN ? `${shown} and ${ids.length - MAY_STILL_APPROVE_SHOWN} more` : shown;
}

/** "security 1/1, sre 0/2 (may still approve: u-dana, u-erik)" plus lapses and rules that cannot be met. */
export function describeJudgement(j: RulesJudgement): string {
  const rules = j.progress
    .map((p) => {
      const name = p.rule.startsWith("group:") ? p.rule.slice("group:".length) : p.rule;
      const may =
        p.currentApprovals >= p.requiredApprovals
          ? ""
          : p.mayStillApprove.length > 0
            ? ` (may still approve: ${listNames(p.mayStillApprove)}${p.openEnded ? ", or others" : ""})`
            : p.openEnded
              ? " (may still approve: others outside the directory)"
              : "";
      return `${name} ${p.currentApprovals}/${p.requiredApprovals}${may}`;
    })
    .join(", ");
  const notes = [
    ...j.lapsed.map((l) => `${l.userId}'s approval lapsed: ${l.why}`),
    ...j.unmeetable,
  ];
  return notes.length === 0 ? rules : `${rules}; ${notes.join("; ")}`;
}
