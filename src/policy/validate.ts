import { requireEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError, quoteInput } from "../errors.js";
import { compileBranchPattern } from "./branch-pattern.js";
import {
  APPROVAL_RULE_ROLES,
  APPROVAL_RULES_MAX,
  type ApprovalRule,
  type ExternalApprovalConfig,
  GROUP_NAME_PATTERN,
  NAME_FIELD_MAX,
  POLICY_NAME_MAX,
  type PolicyConfig,
  type ProjectRef,
  REQUIRED_APPROVALS_MAX,
  SOAK_DURATION_MAX_SECONDS,
} from "./policy.js";

const POLICY_NAME_RE = /^[a-z0-9-]+$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// C0/C1 control characters have no business in names that end up in logs and subjects.
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** A required, bounded, printable identifier-ish string (organisation, project). */
export function requireName(value: string | undefined, field: string): string {
  if (value === undefined || value.trim() === "") throw new InvalidArgumentError(field, "is required");
  if (value.length > NAME_FIELD_MAX)
    throw new InvalidArgumentError(field, `must be at most ${NAME_FIELD_MAX} characters`);
  if (CONTROL_RE.test(value)) throw new InvalidArgumentError(field, "must not contain control characters");
  return value;
}

export function requireProject(
  project: { organisation: string; project: string } | undefined,
): ProjectRef {
  if (project === undefined) throw new InvalidArgumentError("project", "is required");
  return {
    organisation: requireName(project.organisation, "project.organisation"),
    project: requireName(project.project, "project.project"),
  };
}

export function requirePolicyName(name: string, field = "name"): string {
  if (name.length === 0) throw new InvalidArgumentError(field, "is required");
  if (name.length > POLICY_NAME_MAX)
    throw new InvalidArgumentError(field, `must be at most ${POLICY_NAME_MAX} characters`);
  if (!POLICY_NAME_RE.test(name))
    throw new InvalidArgumentError(field, "may contain only lowercase letters, digits and '-'");
  return name;
}

/** Normalises a UUID to lowercase; INVALID_ARGUMENT naming `field` when malformed. */
export function requireUuid(value: string, field: string): string {
  if (value === "") throw new InvalidArgumentError(field, "is required");
  if (!UUID_RE.test(value)) throw new InvalidArgumentError(field, "must be a UUID");
  return value.toLowerCase();
}

export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

/**
 * Validates a policy config; `prefix` is the oneof field name (e.g. `soak_time`).
 * Returns it with its environment names folded (`Prod` → `prod`).
 */
export function validatePolicyConfig(config: PolicyConfig, prefix: string): PolicyConfig {
  switch (config.kind) {
    case "soak_time": {
      const sourceEnvironment = requireEnvironment(config.sourceEnvironment, `${prefix}.source_environment`);
      const targetEnvironment = requireEnvironment(config.targetEnvironment, `${prefix}.target_environment`);
      const duration = config.durationSeconds;
      // `!(d > 0)` also catches NaN.
      if (!(duration > 0)) throw new InvalidArgumentError(`${prefix}.duration_seconds`, "must be greater than 0");
      if (duration > SOAK_DURATION_MAX_SECONDS)
        throw new InvalidArgumentError(
          `${prefix}.duration_seconds`,
          `must be at most ${SOAK_DURATION_MAX_SECONDS} (10 years)`,
        );
      if (!Number.isInteger(duration))
        throw new InvalidArgumentError(`${prefix}.duration_seconds`, "must be a whole number of seconds");
      if (sourceEnvironment === targetEnvironment)
        throw new InvalidArgumentError(
          `${prefix}.source_environment`,
          "must differ from target_environment",
        );
      return { ...config, sourceEnvironment, targetEnvironment };
    }
    case "branch_restriction": {
      const targetEnvironment = requireEnvironment(config.targetEnvironment, `${prefix}.target_environment`);
      compileBranchPattern(config.branchPattern, `${prefix}.branch_pattern`);
      return { ...config, targetEnvironment };
    }
    case "external_approval": {
      const targetEnvironment = requireEnvironment(config.targetEnvironment, `${prefix}.target_environment`);
      if (
        !Number.isInteger(config.requiredApprovals) ||
        config.requiredApprovals < 1 ||
        config.requiredApprovals > REQUIRED_APPROVALS_MAX
      )
        throw new InvalidArgumentError(
          `${prefix}.required_approvals`,
          `must be between 1 and ${REQUIRED_APPROVALS_MAX}`,
        );
      return validateRequestOptions(validateApprovalRules({ ...config, targetEnvironment }, prefix), prefix);
    }
    case "supersede_pending": {
      const targetEnvironment = requireEnvironment(config.targetEnvironment, `${prefix}.target_environment`);
      return { kind: "supersede_pending", targetEnvironment, sameBranchOnly: config.sameBranchOnly === true };
    }
  }
}

/** Forest's SupersedePendingConfig as it arrives on the wire. */
export interface SupersedePendingInput {
  readonly targetEnvironment: string;
  readonly sameBranchOnly: boolean;
  readonly cancelInProgress: boolean;
}

/**
 * Validates a supersede-pending config from the wire. `cancel_in_progress`
 * (Forest: also stop a rollout already under way) has no meaning here:
 * releasegate does not run deployments, so it refuses true rather than
 * silently ignore it.
 */
export function supersedeConfigFromInput(input: SupersedePendingInput, prefix: string): PolicyConfig {
  if (input.cancelInProgress)
    throw new InvalidArgumentError(
      `${prefix}.cancel_in_progress`,
      "not supported; releasegate does not run deployments, so it cannot cancel one in progress: leave it false",
    );
  return validatePolicyConfig(
    { kind: "supersede_pending", targetEnvironment: input.targetEnvironment, sameBranchOnly: input.sameBranchOnly },
    prefix,
  );
}

/** Longest request timeout and approval age, in seconds (a year: anything longer is a typo). */
export const REQUEST_SECONDS_MAX = 366 * 24 * 3600;

/** The request options of issue 13: whole seconds 0..REQUEST_SECONDS_MAX; zeros and false stored as absent. */
function validateRequestOptions(config: ExternalApprovalConfig, prefix: string): ExternalApprovalConfig {
  const { requestTimeoutSeconds, maxApprovalAgeSeconds, rejectBlocks, ...base } = config;
  for (const [field, v] of [
    ["request_timeout_seconds", requestTimeoutSeconds],
    ["max_approval_age_seconds", maxApprovalAgeSeconds],
  ] as const)
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > REQUEST_SECONDS_MAX))
      throw new InvalidArgumentError(
        `${prefix}.${field}`,
        `must be whole seconds between 0 (off) and ${REQUEST_SECONDS_MAX} (got ${v})`,
      );
  return {
    ...base,
    ...(requestTimeoutSeconds ? { requestTimeoutSeconds } : {}),
    ...(maxApprovalAgeSeconds ? { maxApprovalAgeSeconds } : {}),
    ...(rejectBlocks === true ? { rejectBlocks: true } : {}),
  };
}

/** A rule as it arrives: both fields possible, to be checked. */
export interface ApprovalRuleInput {
  readonly group: string;
  readonly minRole: string;
  readonly requiredApprovals: number;
}

/**
 * Validates one rule as given on the wire (exactly one of group and min_role)
 * and returns the domain rule. `field` is the rule's path, e.g.
 * `external_approval.rules[0]`.
 */
export function approvalRuleFromInput(input: ApprovalRuleInput, field: string): ApprovalRule {
  const hasGroup = input.group !== "";
  const hasRole = input.minRole !== "";
  if (hasGroup === hasRole)
    throw new InvalidArgumentError(
      field,
      hasGroup ? "set only one of group and min_role" : "set one of group (an approver group) or min_role",
    );
  const n = input.requiredApprovals;
  if (!Number.isInteger(n) || n < 1 || n > REQUIRED_APPROVALS_MAX)
    throw new InvalidArgumentError(`${field}.required_approvals`, `must be between 1 and ${REQUIRED_APPROVALS_MAX}`);
  if (hasGroup) {
    if (!GROUP_NAME_PATTERN.test(input.group))
      throw new InvalidArgumentError(
        `${field}.group`,
        `${quoteInput(input.group)} is not a valid group name: use 1-63 characters a-z, 0-9 or '-', starting with a letter or digit`,
      );
    return { group: input.group, requiredApprovals: n };
  }
  const role = APPROVAL_RULE_ROLES.find((r) => r === input.minRole);
  if (role === undefined)
    throw new InvalidArgumentError(
      `${field}.min_role`,
      `${quoteInput(input.minRole)} is not a role a rule may require: use ${APPROVAL_RULE_ROLES.join(", ")}`,
    );
  return { minRole: role, requiredApprovals: n };
}

/** Rules of an external approval config: at most ten, no duplicates; no rules stored as none. */
function validateApprovalRules(config: ExternalApprovalConfig, prefix: string): ExternalApprovalConfig {
  const rules = config.rules ?? [];
  if (rules.length > APPROVAL_RULES_MAX)
    throw new InvalidArgumentError(`${prefix}.rules`, `must have at most ${APPROVAL_RULES_MAX} rules`);
  const seen = new Map<string, number>();
  rules.forEach((rule, i) => {
    const field = `${prefix}.rules[${i}]`;
    // Re-validate: configs come from the wire and from storage alike.
    approvalRuleFromInput(
      {
        group: "group" in rule ? rule.group : "",
        minRole: "minRole" in rule ? rule.minRole : "",
        requiredApprovals: rule.requiredApprovals,
      },
      field,
    );
    const key = "group" in rule ? `group ${rule.group}` : `min_role ${rule.minRole}`;
    const first = seen.get(key);
    if (first !== undefined)
      throw new InvalidArgumentError(field, `repeats rules[${first}] (${key}): give one rule per group or role`);
    seen.set(key, i);
  });
  if (config.distinctApprovers === true && rules.length === 0)
    throw new InvalidArgumentError(`${prefix}.distinct_approvers`, "needs rules: it says how approvals count across rules");
  const { rules: _rules, distinctApprovers: _distinct, ...base } = config;
  if (rules.length === 0) return base;
  return { ...base, rules, ...(config.distinctApprovers === true ? { distinctApprovers: true } : {}) };
}
