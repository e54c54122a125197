import { FailedPreconditionError } from "../errors.js";
import { type PolicyConfig, ruleLabel } from "../policy/policy.js";
import { isOpenEnded, knownEligible, type RuleDirectory } from "./eligibility.js";
import { type MatchRule, unsatisfiableRules } from "./rule-matching.js";

/**
 * Configuration-time check of an approval policy's rules against the
 * directory: FAILED_PRECONDITION for a group that does not exist, or whose
 * active members (covering the target environment) are fewer than a rule
 * requires, or (distinct_approvers) when no assignment of known people fills
 * every rule. A group mapped to an identity-provider group cannot be checked
 * (its members are known only from tokens at vote time) and is accepted; so
 * are role rules (tokens carry roles).
 */
export function requireRulesSatisfiable(config: PolicyConfig, dir: RuleDirectory, prefix = "external_approval"): void {
  if (config.kind !== "external_approval") return;
  const rules = config.rules ?? [];
  const where = `${dir.organisation}/${dir.at.project} ${dir.at.environment}`;
  const matchRules: MatchRule[] = [];
  rules.forEach((rule, i) => {
    const known = knownEligible(rule, dir);
    matchRules.push({
      required: rule.requiredApprovals,
      isEligible: (id) => known.includes(id),
      openEnded: isOpenEnded(rule, dir),
    });
    if (!("group" in rule)) return;
    const group = dir.groups.get(rule.group);
    if (group === undefined)
      throw new FailedPreconditionError(
        `${prefix}.rules[${i}].group`,
        `group ${rule.group} does not exist in ${dir.organisation}; create it (releasegate groups create) first`,
      );
    if (group.idpGroup !== undefined) return;
    if (known.length < rule.requiredApprovals)
      throw new FailedPreconditionError(
        `${prefix}.rules[${i}]`,
        `rule group:${rule.group} requires ${rule.requiredApprovals} approvals but group ${rule.group} has ${known.length} active member${known.length === 1 ? "" : "s"} for ${where}; add members or lower required_approvals`,
      );
  });
  if (config.distinctApprovers !== true) return;
  const pool = [...new Set(matchRules.flatMap((_, i) => knownEligible(rules[i]!, dir)))];
  const failing = unsatisfiableRules(matchRules, pool, true);
  if (failing.length > 0)
    throw new FailedPreconditionError(
      `${prefix}.rules[${failing[0]}]`,
      `with distinct_approvers each person fills one rule, and the ${pool.length} known eligible people for ${where} cannot fill every rule (${failing.map((r) => ruleLabel(rules[r]!)).join(", ")} left short); add members or lower required_approvals`,
    );
}
