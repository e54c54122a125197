import type { Role } from "../auth/roles.js";
import type { BreakGlassMark } from "./break-glass-mark.js";
import type { RuleProgress } from "./judge-rules.js";

/** A user's current vote on one release intent for one target environment. */
export type Decision = "approved" | "rejected";
/**
 * `peer`: a normal vote. `admin_override`: an admin author approving their
 * own release. `break_glass`: an admin opening the whole approval gate
 * (history and events only; never a current vote).
 */
export type DecisionKind = "peer" | "admin_override" | "break_glass";

export interface Vote {
  readonly userId: string;
  readonly username: string;
  readonly decision: Decision;
  readonly decisionKind: DecisionKind;
  readonly decidedAt: Date;
  readonly comment?: string;
  /** The voter's identity-provider groups at vote time (approval rules judge group rules on these). */
  readonly idpGroups?: readonly string[];
  /** The role the voter's token gave them in the organisation at vote time (grants are read at count time). */
  readonly tokenRole?: Role;
}

/** What an approval policy shows: its threshold and the current votes. */
export interface ApprovalState {
  readonly requiredApprovals: number;
  readonly currentApprovals: number;
  /** Current votes in the order first cast. */
  readonly decisions: readonly Vote[];
  /** Per-rule progress (releasegate approval rules); absent for a policy without rules. */
  readonly ruleProgress?: readonly RuleProgress[];
  /** Set when an admin broke the glass: the policy passes whatever the counts. */
  readonly breakGlass?: BreakGlassMark | undefined;
}

export function approvalState(
  requiredApprovals: number,
  votes: readonly Vote[],
  breakGlass?: BreakGlassMark,
): ApprovalState {
  let current = 0;
  for (const v of votes) if (v.decision === "approved") current++;
  return { requiredApprovals, currentApprovals: current, decisions: votes, breakGlass };
}

/** True when the policy behind `state` passes: enough approvals, or a break-glass. */
export function approvalPassed(state: ApprovalState): boolean {
  return state.breakGlass !== undefined || state.currentApprovals >= state.requiredApprovals;
}

/**
 * The current votes after `cast`: it replaces the voter's earlier vote in
 * place (a vote keeps the order it was first cast in), or comes last.
 */
export function withVote(votes: readonly Vote[], cast: Vote): Vote[] {
  const at = votes.findIndex((v) => v.userId === cast.userId);
  if (at < 0) return [...votes, cast];
  const next = [...votes];
  next[at] = cast;
  return next;
}
