import { create } from "@bufbuild/protobuf";
import { breakGlassReason } from "../approval/break-glass-mark.js";
import type { RuleProgress } from "../approval/judge-rules.js";
import type { ApprovalState, Vote } from "../approval/vote.js";
import { InvalidArgumentError } from "../errors.js";
import {
  type CreatePolicyRequest,
  type ExternalApprovalState,
  ExternalApprovalStateSchema,
  type PolicyEvaluation as PolicyEvaluationMsg,
  PolicyEvaluationSchema,
  type Policy as PolicyMsg,
  PolicySchema,
  PolicyType,
} from "../gen/forest/v1/policy_pb.js";
import {
  type ApprovalRule as ApprovalRuleMsg,
  type ApprovalRuleProgress,
  ApprovalRuleProgressSchema,
  ApprovalRuleSchema,
} from "../gen/releasegate/v1/approval_rules_pb.js";
import type { PolicyEvaluation } from "../policy/evaluate.js";
import { APPROVAL_RULES_MAX, type ApprovalRule, type Policy, type PolicyConfig, type PolicyKind } from "../policy/policy.js";
import { approvalRuleFromInput, supersedeConfigFromInput, validatePolicyConfig } from "../policy/validate.js";

const KIND_TO_TYPE: Record<PolicyKind, PolicyType> = {
  soak_time: PolicyType.SOAK_TIME,
  branch_restriction: PolicyType.BRANCH_RESTRICTION,
  external_approval: PolicyType.EXTERNAL_APPROVAL,
  supersede_pending: PolicyType.SUPERSEDE_PENDING,
};

const CASE_TO_KIND = {
  soakTime: "soak_time",
  branchRestriction: "branch_restriction",
  externalApproval: "external_approval",
  supersedePending: "supersede_pending",
} as const satisfies Record<string, PolicyKind>;

/** An int64 count of seconds as a number; out-of-range values stay out of range for validation to name. */
function secondsFromWire(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER) ? Number.NaN : Number(v);
}

/** RFC 3339 with milliseconds, UTC. */
export function rfc3339(d: Date): string {
  return d.toISOString();
}

type ConfigOneof = CreatePolicyRequest["config"];

/**
 * Converts and validates the request's config oneof. Returns undefined when
 * the oneof is unset. Field names in errors are the proto field names.
 */
export function configFromProto(config: ConfigOneof): PolicyConfig | undefined {
  switch (config.case) {
    case undefined:
      return undefined;
    case "supersedePending":
      return supersedeConfigFromInput(config.value, "supersede_pending");
    case "soakTime": {
      const d = config.value.durationSeconds;
      // int64 arrives as bigint; beyond the safe range only the sign matters
      // to validation ("greater than 0" / "at most 10 years").
      const duration =
        d > BigInt(Number.MAX_SAFE_INTEGER)
          ? Number.POSITIVE_INFINITY
          : d < BigInt(Number.MIN_SAFE_INTEGER)
            ? Number.NEGATIVE_INFINITY
            : Number(d);
      return validatePolicyConfig(
        {
          kind: "soak_time",
          sourceEnvironment: config.value.sourceEnvironment,
          targetEnvironment: config.value.targetEnvironment,
          durationSeconds: duration,
        },
        "soak_time",
      );
    }
    case "branchRestriction":
      return validatePolicyConfig(
        {
          kind: "branch_restriction",
          targetEnvironment: config.value.targetEnvironment,
          branchPattern: config.value.branchPattern,
        },
        "branch_restriction",
      );
    case "externalApproval": {
      const { targetEnvironment, requiredApprovals, rules, distinctApprovers } = config.value;
      const { requestTimeoutSeconds, maxApprovalAgeSeconds, rejectBlocks } = config.value;
      if (rules.length > APPROVAL_RULES_MAX)
        throw new InvalidArgumentError("external_approval.rules", `must have at most ${APPROVAL_RULES_MAX} rules`);
      return validatePolicyConfig(
        {
          kind: "external_approval",
          targetEnvironment,
          requiredApprovals,
          ...(rules.length > 0
            ? { rules: rules.map((r, i) => approvalRuleFromInput(r, `external_approval.rules[${i}]`)) }
            : {}),
          ...(distinctApprovers ? { distinctApprovers } : {}),
          ...(requestTimeoutSeconds !== 0n ? { requestTimeoutSeconds: secondsFromWire(requestTimeoutSeconds) } : {}),
          ...(maxApprovalAgeSeconds !== 0n ? { maxApprovalAgeSeconds: secondsFromWire(maxApprovalAgeSeconds) } : {}),
          ...(rejectBlocks ? { rejectBlocks } : {}),
        },
        "external_approval",
      );
    }
  }
}

/** CreatePolicy: the config is required and must agree with policy_type. */
export function requireConfigMatchingType(config: ConfigOneof, policyType: PolicyType): PolicyConfig {
  if (config.case === undefined)
    throw new InvalidArgumentError(
      "config",
      "is required: set one of soak_time, branch_restriction, external_approval, supersede_pending",
    );
  const kind = CASE_TO_KIND[config.case];
  if (policyType !== KIND_TO_TYPE[kind]) {
    const name = PolicyType[policyType] ?? String(policyType);
    throw new InvalidArgumentError(
      "policy_type",
      `${policyType === PolicyType.UNSPECIFIED ? "is required" : `POLICY_TYPE_${name} does not match`}: config is ${kind}, so policy_type must be POLICY_TYPE_${kind.toUpperCase()}`,
    );
  }
  return configFromProto(config)!;
}

export function policyToProto(p: Policy): PolicyMsg {
  const c = p.config;
  let config: PolicyMsg["config"];
  switch (c.kind) {
    case "soak_time":
      config = {
        case: "soakTime",
        value: {
          $typeName: "forest.v1.SoakTimeConfig",
          sourceEnvironment: c.sourceEnvironment,
          targetEnvironment: c.targetEnvironment,
          durationSeconds: BigInt(c.durationSeconds),
        },
      };
      break;
    case "branch_restriction":
      config = {
        case: "branchRestriction",
        value: {
          $typeName: "forest.v1.BranchRestrictionConfig",
          targetEnvironment: c.targetEnvironment,
          branchPattern: c.branchPattern,
        },
      };
      break;
    case "external_approval":
      config = {
        case: "externalApproval",
        value: {
          $typeName: "forest.v1.ExternalApprovalConfig",
          targetEnvironment: c.targetEnvironment,
          requiredApprovals: c.requiredApprovals,
          rules: (c.rules ?? []).map(ruleToProto),
          distinctApprovers: c.distinctApprovers === true,
          requestTimeoutSeconds: BigInt(c.requestTimeoutSeconds ?? 0),
          maxApprovalAgeSeconds: BigInt(c.maxApprovalAgeSeconds ?? 0),
          rejectBlocks: c.rejectBlocks === true,
        },
      };
      break;
    case "supersede_pending":
      config = {
        case: "supersedePending",
        value: {
          $typeName: "forest.v1.SupersedePendingConfig",
          targetEnvironment: c.targetEnvironment,
          sameBranchOnly: c.sameBranchOnly,
          cancelInProgress: false,
        },
      };
      break;
  }
  return create(PolicySchema, {
    id: p.id,
    name: p.name,
    enabled: p.enabled,
    policyType: KIND_TO_TYPE[c.kind],
    config,
    createdAt: rfc3339(p.createdAt),
    updatedAt: rfc3339(p.updatedAt),
  });
}

function ruleToProto(r: ApprovalRule): ApprovalRuleMsg {
  return create(ApprovalRuleSchema, {
    group: "group" in r ? r.group : "",
    minRole: "minRole" in r ? r.minRole : "",
    requiredApprovals: r.requiredApprovals,
  });
}

export function ruleProgressToProto(p: RuleProgress): ApprovalRuleProgress {
  return create(ApprovalRuleProgressSchema, {
    rule: p.rule,
    requiredApprovals: p.requiredApprovals,
    currentApprovals: p.currentApprovals,
    approvedBy: [...p.approvedBy],
    mayStillApprove: [...p.mayStillApprove],
    openEnded: p.openEnded,
  });
}

export function voteToProto(v: Vote) {
  return {
    userId: v.userId,
    username: v.username,
    decision: v.decision,
    decidedAt: rfc3339(v.decidedAt),
    comment: v.comment,
    decisionKind: v.decisionKind,
  };
}

/** The approval request an approval state belongs to (its votes are the ones shown). */
export interface RequestRef {
  readonly id: string;
  readonly state: string;
}

export function approvalStateToProto(s: ApprovalState, request?: RequestRef): ExternalApprovalState {
  return create(ExternalApprovalStateSchema, {
    requestId: request?.id ?? "",
    requestState: request?.state ?? "",
    requiredApprovals: s.requiredApprovals,
    currentApprovals: s.currentApprovals,
    decisions: s.decisions.map(voteToProto),
    ruleProgress: (s.ruleProgress ?? []).map(ruleProgressToProto),
    breakGlass: s.breakGlass === undefined ? "" : breakGlassReason(s.breakGlass),
  });
}

export function evaluationToProto(e: PolicyEvaluation, request?: RequestRef): PolicyEvaluationMsg {
  return create(PolicyEvaluationSchema, {
    policyName: e.policyName,
    policyType: e.kind === undefined ? PolicyType.UNSPECIFIED : KIND_TO_TYPE[e.kind],
    passed: e.passed,
    reason: e.reason,
    externalApprovalState: e.approval === undefined ? undefined : approvalStateToProto(e.approval, request),
  });
}
