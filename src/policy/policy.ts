/** Domain model of a policy, independent of protobuf and SQL. */
export type PolicyKind = "soak_time" | "branch_restriction" | "external_approval" | "supersede_pending";

export interface SoakTimeConfig {
  readonly kind: "soak_time";
  readonly sourceEnvironment: string;
  readonly targetEnvironment: string;
  /** Seconds the release must have run in the source environment. */
  readonly durationSeconds: number;
}

export interface BranchRestrictionConfig {
  readonly kind: "branch_restriction";
  readonly targetEnvironment: string;
  /** RE2 pattern, searched within the branch name (anchor with ^…$ for a full match). */
  readonly branchPattern: string;
}

/** The roles a rule may require at least (the ladder minus `viewer`, who cannot vote). */
export const APPROVAL_RULE_ROLES = ["member", "maintainer", "admin"] as const;
export type ApprovalRuleRole = (typeof APPROVAL_RULE_ROLES)[number];

/** `requiredApprovals` approvals from the members of an approver group. */
export interface GroupApprovalRule {
  readonly group: string;
  readonly requiredApprovals: number;
}

/** `requiredApprovals` approvals from people whose effective role is at least `minRole`. */
export interface RoleApprovalRule {
  readonly minRole: ApprovalRuleRole;
  readonly requiredApprovals: number;
}

export type ApprovalRule = GroupApprovalRule | RoleApprovalRule;

/** How a rule is named in reasons and on the wire: `group:sre`, `role:maintainer`. */
export function ruleLabel(rule: ApprovalRule): string {
  return "group" in rule ? `group:${rule.group}` : `role:${rule.minRole}`;
}

export interface ExternalApprovalConfig {
  readonly kind: "external_approval";
  readonly targetEnvironment: string;
  readonly requiredApprovals: number;
  /**
   * Who may approve (releasegate). Absent or empty: anyone who may vote, as in
   * Forest. Present: the policy also needs every rule's own count.
   */
  readonly rules?: readonly ApprovalRule[];
  /** Each approver counts for at most one rule (only meaningful with rules). */
  readonly distinctApprovers?: boolean;
  /** Seconds after which a pending approval request expires (issue 13); absent or 0: never. */
  readonly requestTimeoutSeconds?: number;
  /** Approvals older than this many seconds stop counting at evaluation time; absent or 0: no limit. */
  readonly maxApprovalAgeSeconds?: number;
  /** A current rejection by an eligible voter blocks the policy (the request becomes rejected); default off. */
  readonly rejectBlocks?: boolean;
}

/**
 * Forest's supersede-pending policy: once a newer release intent of the
 * project is registered (on the same branch with `sameBranchOnly`), an older
 * one not yet deployed to the target environment does not pass there.
 * Forest's `cancel_in_progress` is not supported (validation refuses it).
 */
export interface SupersedePendingConfig {
  readonly kind: "supersede_pending";
  readonly targetEnvironment: string;
  /** Only a newer intent on the same branch supersedes; an intent without a branch is never superseded. */
  readonly sameBranchOnly: boolean;
}

export type PolicyConfig = SoakTimeConfig | BranchRestrictionConfig | ExternalApprovalConfig | SupersedePendingConfig;

export interface ProjectRef {
  readonly organisation: string;
  readonly project: string;
}

export interface Policy {
  readonly id: string;
  readonly project: ProjectRef;
  readonly name: string;
  readonly enabled: boolean;
  readonly config: PolicyConfig;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/**
 * What decides a project's gate, cached per project: its policies and its
 * declared environments (undefined: no declaration, every valid name is accepted).
 */
export interface ProjectRules {
  readonly policies: readonly Policy[];
  /** In the order the admin declared them. */
  readonly environments: readonly string[] | undefined;
}

/** Limits that validation enforces (and documents). */
export const POLICY_NAME_MAX = 63;
export const BRANCH_PATTERN_MAX = 256;
/** Longest branch name accepted (EvaluatePolicies `branch`, intent `branch`). */
export const BRANCH_NAME_MAX = 256;
export const REQUIRED_APPROVALS_MAX = 100;
/** Most rules one approval policy may have. */
export const APPROVAL_RULES_MAX = 10;
/** Approver group names (the same pattern the directory enforces). */
export const GROUP_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Ten years: longer soaks are almost certainly a unit mistake. */
export const SOAK_DURATION_MAX_SECONDS = 10 * 365 * 24 * 3600;
export const NAME_FIELD_MAX = 200;
