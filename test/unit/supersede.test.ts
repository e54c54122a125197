import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { evaluatePolicy } from "../../src/policy/evaluate.js";
import type { Policy, SupersedePendingConfig } from "../../src/policy/policy.js";
import { judgeSupersede, type SupersedeFacts } from "../../src/policy/supersede.js";
import { supersedeConfigFromInput } from "../../src/policy/validate.js";
import { supersedePolicies } from "../../src/release/supersede.js";

const I = "11111111-1111-4111-8111-111111111111";
const N = "22222222-2222-4222-8222-222222222222";
const M = "33333333-3333-4333-8333-333333333333";
const anyBranch: SupersedePendingConfig = { kind: "supersede_pending", targetEnvironment: "prod", sameBranchOnly: false };
const sameBranch: SupersedePendingConfig = { ...anyBranch, sameBranchOnly: true };
const facts = (over: Partial<SupersedeFacts> = {}): SupersedeFacts => ({ branch: "main", deployedToTarget: false, ...over });

describe("judgeSupersede", () => {
  it("passes without a release intent and says there is nothing to judge", () => {
    expect(judgeSupersede("one", anyBranch, undefined, undefined)).toEqual({
      passed: true,
      reason: "nothing to supersede: no release intent given (pass release_intent_id to judge one)",
    });
  });

  it("does not pass an intent with a newer one in the project, naming it and the policy", () => {
    expect(judgeSupersede("one", anyBranch, I, facts({ newerInProject: N }))).toEqual({
      passed: false,
      reason: `superseded by ${N} (policy 'one')`,
    });
  });

  it("passes the newest intent", () => {
    expect(judgeSupersede("one", anyBranch, I, facts())).toEqual({
      passed: true,
      reason: "not superseded: no newer release of the project",
    });
  });

  it("passes an intent already deployed to the target, whatever is newer", () => {
    expect(judgeSupersede("one", anyBranch, I, facts({ deployedToTarget: true, newerInProject: N }))).toEqual({
      passed: true,
      reason: `not superseded: release ${I} is already deployed to prod`,
    });
  });

  it("with same_branch_only looks only at the same branch", () => {
    expect(judgeSupersede("b", sameBranch, I, facts({ newerInProject: N })).passed).toBe(true);
    expect(judgeSupersede("b", sameBranch, I, facts({ newerInProject: N, newerOnBranch: M }))).toEqual({
      passed: false,
      reason: `superseded by ${M} (policy 'b')`,
    });
  });

  it("with same_branch_only never supersedes an intent without a branch", () => {
    expect(judgeSupersede("b", sameBranch, I, facts({ branch: "", newerInProject: N }))).toEqual({
      passed: true,
      reason: `not superseded: release ${I} has no branch, and only a newer release on the same branch supersedes`,
    });
  });

  it("is reported by evaluatePolicy with its kind", () => {
    const policy: Policy = {
      id: "p",
      project: { organisation: "acme", project: "web" },
      name: "one",
      enabled: true,
      config: anyBranch,
      createdAt: new Date(0),
      updatedAt: new Date(0),
    };
    const e = evaluatePolicy(policy, {
      now: new Date(0),
      targetEnvironment: "prod",
      releaseIntentId: I,
      lastSuccessfulDeploy: new Map(),
      votes: [],
      supersede: facts({ newerInProject: N }),
    });
    expect(e).toMatchObject({ policyName: "one", kind: "supersede_pending", passed: false });
  });
});

describe("supersedeConfigFromInput", () => {
  it("refuses cancel_in_progress true, naming the field", () => {
    expect(() =>
      supersedeConfigFromInput({ targetEnvironment: "prod", sameBranchOnly: false, cancelInProgress: true }, "supersede_pending"),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      supersedeConfigFromInput({ targetEnvironment: "prod", sameBranchOnly: false, cancelInProgress: true }, "supersede_pending"),
    ).toThrow(/^supersede_pending\.cancel_in_progress: not supported; /);
  });

  it("folds the target environment and keeps same_branch_only", () => {
    expect(
      supersedeConfigFromInput({ targetEnvironment: "Prod", sameBranchOnly: true, cancelInProgress: false }, "supersede_pending"),
    ).toEqual({ kind: "supersede_pending", targetEnvironment: "prod", sameBranchOnly: true });
  });

  it("requires a target environment", () => {
    expect(() =>
      supersedeConfigFromInput({ targetEnvironment: "", sameBranchOnly: false, cancelInProgress: false }, "supersede_pending"),
    ).toThrow(/^supersede_pending\.target_environment: /);
  });
});

describe("supersedePolicies", () => {
  it("keeps enabled supersede policies in name order", () => {
    const mk = (name: string, enabled: boolean, config: Policy["config"]): Policy => ({
      id: name,
      project: { organisation: "acme", project: "web" },
      name,
      enabled,
      config,
      createdAt: new Date(0),
      updatedAt: new Date(0),
    });
    const list = [
      mk("z", true, anyBranch),
      mk("off", false, anyBranch),
      mk("a", true, sameBranch),
      mk("gate", true, { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: 1 }),
    ];
    expect(supersedePolicies(list).map((p) => p.name)).toEqual(["a", "z"]);
  });
});
