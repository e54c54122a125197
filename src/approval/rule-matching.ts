/**
 * Counting approvals against approval rules ("N from each group"). Pure: the
 * caller says who approved and, per rule, who is eligible; this module
 * decides.
 *
 * Two semantics:
 * - shared (GitLab's): one approval counts for every rule its voter is
 *   eligible for;
 * - distinct (`distinct_approvers`): each approver fills at most one rule
 *   slot; the rules pass when an assignment of approvers to slots fills
 *   every slot. That is a bipartite b-matching (rule r has `required`
 *   slots), decided exactly with augmenting paths (Kuhn's algorithm with
 *   capacities). A greedy assignment is wrong: "alice in security and sre,
 *   bob in security only" greedily puts alice on security and leaves sre
 *   empty, although bob→security, alice→sre fills both.
 */

/** One rule as the matcher sees it. */
export interface MatchRule {
  /** Approvals this rule needs (1..100 after validation). */
  readonly required: number;
  /** Whether `voterId` may count for this rule. */
  readonly isEligible: (voterId: string) => boolean;
  /**
   * True when the rule's eligible people are not all known (an identity
   * provider group, or a role that tokens may carry): only used by
   * {@link unsatisfiableRules}, which then assumes enough such people.
   */
  readonly openEnded?: boolean;
}

/** Progress of one rule. */
export interface RuleTally {
  readonly required: number;
  /** Approvers eligible for this rule, in approval order. */
  readonly eligible: readonly string[];
  /**
   * Approvers who count for this rule: all eligible ones (shared), or the
   * ones the assignment gives this rule (distinct, at most `required`).
   */
  readonly counted: readonly string[];
  /** Slots still empty: `max(0, required - counted.length)`. */
  readonly unfilled: number;
  readonly met: boolean;
}

export interface RulesDecision {
  /** True when every rule is met (true for no rules). */
  readonly passed: boolean;
  /** One tally per rule, in the rules' order. */
  readonly rules: readonly RuleTally[];
}

/** Who is eligible for what: `eligible[r][a]` for rule r and approver a. */
function eligibilityMatrix(rules: readonly MatchRule[], approvers: readonly string[]): boolean[][] {
  return rules.map((rule) => approvers.map((a) => rule.isEligible(a)));
}

/**
 * A maximum b-matching of approvers to rules (rule r takes at most
 * `capacity[r]` approvers, each approver at most one rule). Returns, per
 * approver, the rule index it fills, or -1.
 *
 * Kuhn's augmenting paths: each approver in turn looks for a rule with a free
 * slot, re-routing approvers already placed when that frees one. O(A·E),
 * with A ≤ the number of approvers and E ≤ A·rules: small.
 */
function maximumAssignment(capacity: readonly number[], eligible: readonly boolean[][], approverCount: number): number[] {
  const assignedTo = new Array<number>(approverCount).fill(-1);
  const members: number[][] = capacity.map(() => []);
  for (let a = 0; a < approverCount; a++) {
    const visited = new Array<boolean>(capacity.length).fill(false);
    augment(a, capacity, eligible, assignedTo, members, visited);
  }
  return assignedTo;
}

/** Tries to place approver `a`, moving others along an augmenting path. Mutates on success only. */
function augment(
  a: number,
  capacity: readonly number[],
  eligible: readonly boolean[][],
  assignedTo: number[],
  members: number[][],
  visited: boolean[],
): boolean {
  for (let r = 0; r < capacity.length; r++) {
    if (visited[r] || !eligible[r]![a]) continue;
    visited[r] = true;
    const inRule = members[r]!;
    if (inRule.length < capacity[r]!) {
      place(a, r, assignedTo, members);
      return true;
    }
    for (const other of inRule) {
      if (augment(other, capacity, eligible, assignedTo, members, visited)) {
        // `other` moved to another rule (place() removed it here): a takes its slot.
        place(a, r, assignedTo, members);
        return true;
      }
    }
  }
  return false;
}

function place(a: number, r: number, assignedTo: number[], members: number[][]): void {
  const from = assignedTo[a]!;
  if (from >= 0) {
    const list = members[from]!;
    list.splice(list.indexOf(a), 1);
  }
  assignedTo[a] = r;
  members[r]!.push(a);
}

/**
 * Decides the rules against the current approvers (distinct ids, in approval
 * order). Shared semantics: a rule is met when its eligible approvers reach
 * `required`. Distinct: every rule is met exactly when a maximum assignment
 * fills every slot; the tallies show one such assignment (deterministic for
 * the same input).
 */
export function decideRules(
  rules: readonly MatchRule[],
  approvers: readonly string[],
  distinct: boolean,
): RulesDecision {
  const eligible = eligibilityMatrix(rules, approvers);
  const eligibleIds = eligible.map((row) => approvers.filter((_, a) => row[a]));
  if (!distinct) {
    const tallies = rules.map((rule, r): RuleTally => {
      const ids = eligibleIds[r]!;
      return tally(rule.required, ids, ids);
    });
    return { passed: tallies.every((t) => t.met), rules: tallies };
  }
  const assignedTo = maximumAssignment(
    rules.map((r) => r.required),
    eligible,
    approvers.length,
  );
  const tallies = rules.map((rule, r): RuleTally => {
    const counted = approvers.filter((_, a) => assignedTo[a] === r);
    return tally(rule.required, eligibleIds[r]!, counted);
  });
  return { passed: tallies.every((t) => t.met), rules: tallies };
}

function tally(required: number, eligible: readonly string[], counted: readonly string[]): RuleTally {
  const unfilled = Math.max(0, required - counted.length);
  return { required, eligible, counted, unfilled, met: unfilled === 0 };
}

/**
 * Who, among `candidates` (people who have not voted yet and may vote), would
 * bring each rule closer, per rule in the rules' order:
 * - shared: the rule's eligible candidates while the rule is not met;
 * - distinct: the rule's eligible candidates whose approval, counted for
 *   this rule, would fill one more slot of the whole assignment (an
 *   augmenting path from the candidate through this rule exists). This is
 *   exact: with "alice (security, sre) approved; security 1, sre 1", a
 *   security-only candidate is listed under security (alice moves to sre).
 */
export function mayStillApprove(
  rules: readonly MatchRule[],
  approvers: readonly string[],
  candidates: readonly string[],
  distinct: boolean,
): string[][] {
  if (!distinct) {
    const decision = decideRules(rules, approvers, false);
    return rules.map((rule, r) => (decision.rules[r]!.met ? [] : candidates.filter((c) => rule.isEligible(c))));
  }
  const capacity = rules.map((r) => r.required);
  const eligible = eligibilityMatrix(rules, approvers);
  const assignedTo = maximumAssignment(capacity, eligible, approvers.length);
  const members: number[][] = capacity.map(() => []);
  assignedTo.forEach((r, a) => {
    if (r >= 0) members[r]!.push(a);
  });
  return rules.map((rule, r) =>
    candidates.filter((c) => {
      if (!rule.isEligible(c)) return false;
      if (members[r]!.length < capacity[r]!) return true;
      // The slot must come from re-routing someone already in rule r; copies keep the assignment intact.
      const visited = new Array<boolean>(capacity.length).fill(false);
      visited[r] = true;
      const trialAssigned = [...assignedTo];
      const trialMembers = members.map((m) => [...m]);
      return members[r]!.some((other) => augment(other, capacity, eligible, trialAssigned, trialMembers, visited));
    }),
  );
}

/**
 * Whether the rules can still all be met by `pool` (every known person who
 * may still approve, current approvers included), assuming an unlimited
 * supply of people for open-ended rules. Returns the indexes of rules that
 * cannot be met (shared semantics: each such rule; distinct: the rules left
 * with empty slots by a maximum assignment, or [] when one fills them all).
 */
export function unsatisfiableRules(
  rules: readonly MatchRule[],
  pool: readonly string[],
  distinct: boolean,
): number[] {
  const closed = rules.map((rule) => (rule.openEnded === true ? { required: 0, isEligible: () => false } : rule));
  const decision = decideRules(closed, pool, distinct);
  const failing: number[] = [];
  decision.rules.forEach((t, r) => {
    if (!t.met) failing.push(r);
  });
  return failing;
}
