import { describe, expect, it } from "vitest";
import {
  DECLARED_ENVIRONMENTS_CHECK,
  isDeclared,
  policyEnvironments,
  requireDeclared,
  requireEnvironmentList,
  requireNoOrphanedPolicies,
  requirePolicyDeclared,
  undeclaredEnvironmentEvaluation,
} from "../../src/environment/declared-environments.js";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors.js";
import type { Policy, PolicyConfig } from "../../src/policy/policy.js";

const web = { organisation: "acme", project: "web" };
const DECLARED = ["dev", "staging", "prod"];

function policy(name: string, config: PolicyConfig): Policy {
  const at = new Date(0);
  return { id: name, project: web, name, enabled: false, config, createdAt: at, updatedAt: at };
}
const soak = (source: string, target: string): PolicyConfig => ({
  kind: "soak_time",
  sourceEnvironment: source,
  targetEnvironment: target,
  durationSeconds: 60,
});

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected an error");
}

describe("requireEnvironmentList", () => {
  it("folds and keeps the order; empty stays empty", () => {
    expect(requireEnvironmentList(["Dev", "PROD", "staging"])).toEqual(["dev", "prod", "staging"]);
    expect(requireEnvironmentList([])).toEqual([]);
  });

  it("names the entry at fault", () => {
    const e = thrown(() => requireEnvironmentList(["dev", "prod\u200b"]));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect((e as InvalidArgumentError).field).toBe("environments[1]");
    expect(thrown(() => requireEnvironmentList(["dev", ""])).message).toBe("environments[1]: is required");
  });

  it("refuses a duplicate after folding, naming both places", () => {
    expect(thrown(() => requireEnvironmentList(["prod", "dev", "Prod"])).message).toBe(
      "environments[2]: prod is already listed at environments[0] (names are case-insensitive); list each environment once",
    );
  });

  it("accepts 64 names and refuses 65", () => {
    const names = Array.from({ length: 65 }, (_, i) => `e${i}`);
    expect(requireEnvironmentList(names.slice(0, 64))).toHaveLength(64);
    expect(thrown(() => requireEnvironmentList(names)).message).toBe("environments: at most 64 environments, got 65");
  });
});

describe("isDeclared and requireDeclared", () => {
  it("accepts everything without a declaration", () => {
    expect(isDeclared(undefined, "anything")).toBe(true);
    expect(() => requireDeclared(undefined, "anything", "environment", web)).not.toThrow();
  });

  it("accepts declared names and refuses others with FAILED_PRECONDITION naming the field", () => {
    expect(isDeclared(DECLARED, "staging")).toBe(true);
    const e = thrown(() => requireDeclared(DECLARED, "qa", "soak_time.source_environment", web));
    expect(e).toBeInstanceOf(FailedPreconditionError);
    expect(e.message).toBe(
      "soak_time.source_environment: environment qa is not declared for acme/web; declared: dev, staging, prod",
    );
  });
});

describe("policy environments", () => {
  it("lists a soak's source then target, other kinds' target, with their fields", () => {
    expect(policyEnvironments(soak("staging", "prod"))).toEqual([
      { field: "soak_time.source_environment", environment: "staging" },
      { field: "soak_time.target_environment", environment: "prod" },
    ]);
    expect(
      policyEnvironments({ kind: "external_approval", targetEnvironment: "prod", requiredApprovals: 1 }),
    ).toEqual([{ field: "external_approval.target_environment", environment: "prod" }]);
    expect(policyEnvironments({ kind: "branch_restriction", targetEnvironment: "dev", branchPattern: "x" })).toEqual([
      { field: "branch_restriction.target_environment", environment: "dev" },
    ]);
  });

  it("requirePolicyDeclared reports the first undeclared one", () => {
    expect(() => requirePolicyDeclared(DECLARED, soak("staging", "prod"), web)).not.toThrow();
    expect(thrown(() => requirePolicyDeclared(DECLARED, soak("qa", "uat"), web)).message).toMatch(
      /^soak_time\.source_environment: environment qa /,
    );
    expect(thrown(() => requirePolicyDeclared(DECLARED, soak("dev", "uat"), web)).message).toMatch(
      /^soak_time\.target_environment: environment uat /,
    );
  });

  it("requireNoOrphanedPolicies names the first policy by name that uses a left-out environment, disabled ones too", () => {
    const policies = [policy("zz-gate", soak("dev", "uat")), policy("soak-staging", soak("qa", "prod"))];
    const e = thrown(() => requireNoOrphanedPolicies(policies, DECLARED));
    expect(e).toBeInstanceOf(FailedPreconditionError);
    expect(e.message).toBe(
      "environments: policy soak-staging uses environment qa, which the new list does not declare; add it or change the policy first",
    );
    expect(() => requireNoOrphanedPolicies(policies, [...DECLARED, "qa", "uat"])).not.toThrow();
    expect(() => requireNoOrphanedPolicies([], ["prod"])).not.toThrow();
  });
});

describe("undeclaredEnvironmentEvaluation", () => {
  it("is undefined when the target is accepted", () => {
    expect(undeclaredEnvironmentEvaluation(undefined, "prdo", web)).toBeUndefined();
    expect(undeclaredEnvironmentEvaluation(DECLARED, "prod", web)).toBeUndefined();
  });

  it("is one failing evaluation listing the declared names in order", () => {
    expect(undeclaredEnvironmentEvaluation(DECLARED, "prdo", web)).toEqual({
      allPassed: false,
      evaluations: [
        {
          policyName: DECLARED_ENVIRONMENTS_CHECK,
          kind: undefined,
          passed: false,
          reason: "unknown environment prdo for acme/web; declared: dev, staging, prod",
        },
      ],
    });
    expect(DECLARED_ENVIRONMENTS_CHECK).toBe("declared-environments");
  });
});
