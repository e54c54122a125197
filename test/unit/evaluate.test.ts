import { describe, expect, it } from "vitest";
import { applicablePolicies, type EvaluationFacts, evaluatePolicies, evaluatePolicy } from "../../src/policy/evaluate.js";
import type { Policy, PolicyConfig } from "../../src/policy/policy.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const INTENT = "0b8f6a52-8c3e-4b8e-9b7a-3f4f0c1d2e3a";

function policy(name: string, config: PolicyConfig, enabled = true): Policy {
  return {
    id: `id-${name}`,
    project: { organisation: "acme", project: "web" },
    name,
    enabled,
    config,
    createdAt: NOW,
    updatedAt: NOW,
  };
}

const soak = (name: string, seconds: number, source = "staging", target = "prod") =>
  policy(name, { kind: "soak_time", sourceEnvironment: source, targetEnvironment: target, durationSeconds: seconds });
const branch = (name: string, pattern: string, target = "prod") =>
  policy(name, { kind: "branch_restriction", targetEnvironment: target, branchPattern: pattern });
const approval = (name: string, required: number, target = "prod") =>
  policy(name, { kind: "external_approval", targetEnvironment: target, requiredApprovals: required });

function facts(over: Partial<EvaluationFacts> = {}): EvaluationFacts {
  return { now: NOW, targetEnvironment: "prod", lastSuccessfulDeploy: new Map(), votes: [], ...over };
}
const secondsAgo = (s: number) => new Date(NOW.getTime() - s * 1000);

describe("evaluatePolicy: soak time", () => {
  it("passes when the source deploy is exactly the required age", () => {
    const e = evaluatePolicy(soak("s", 3600), facts({ lastSuccessfulDeploy: new Map([["staging", secondsAgo(3600)]]) }));
    expect(e).toEqual({
      policyName: "s",
      kind: "soak_time",
      passed: true,
      reason: "soak time met: 3600s since staging deploy (required 3600s)",
    });
  });

  it("fails one second short with the remaining seconds in the reason", () => {
    const e = evaluatePolicy(soak("s", 1800), facts({ lastSuccessfulDeploy: new Map([["staging", secondsAgo(60)]]) }));
    expect(e.passed).toBe(false);
    expect(e.reason).toBe("soak time not met: 1740s remaining after staging deploy");
  });

  it("fails closed when there is no deploy to the source environment", () => {
    const e = evaluatePolicy(soak("s", 60), facts());
    expect(e.passed).toBe(false);
    expect(e.reason).toBe(
      "soak time not met: no successful deploy of this project to staging; deploy to staging first and wait 60s",
    );
  });

  it("names the release intent when one is given", () => {
    const e = evaluatePolicy(soak("s", 60), facts({ releaseIntentId: INTENT }));
    expect(e.reason).toContain(`no successful deploy of release ${INTENT} to staging`);
  });

  it("does not count a deploy to another environment", () => {
    const e = evaluatePolicy(soak("s", 60), facts({ lastSuccessfulDeploy: new Map([["qa", secondsAgo(999)]]) }));
    expect(e.passed).toBe(false);
  });

  it("treats a deploy in the future (clock skew) as just deployed", () => {
    const future = new Date(NOW.getTime() + 30_000);
    const e = evaluatePolicy(soak("s", 60), facts({ lastSuccessfulDeploy: new Map([["staging", future]]) }));
    expect(e.passed).toBe(false);
    expect(e.reason).toBe("soak time not met: 60s remaining after staging deploy");
  });
});

describe("evaluatePolicy: branch restriction", () => {
  it("passes when the branch matches", () => {
    const e = evaluatePolicy(branch("b", "^main$"), facts({ branch: "main" }));
    expect(e).toMatchObject({ passed: true, reason: "branch main matches ^main$" });
  });

  it("fails when the branch does not match", () => {
    const e = evaluatePolicy(branch("b", "^main$"), facts({ branch: "feature/x" }));
    expect(e).toMatchObject({ passed: false, reason: "branch feature/x does not match required pattern ^main$" });
  });

  it("searches within the branch name unless anchored", () => {
    expect(evaluatePolicy(branch("b", "release/"), facts({ branch: "hotfix/release/1" })).passed).toBe(true);
    expect(evaluatePolicy(branch("b", "^release/"), facts({ branch: "hotfix/release/1" })).passed).toBe(false);
  });

  it("fails closed when the branch is unknown", () => {
    for (const b of [undefined, ""]) {
      const e = evaluatePolicy(branch("b", "^main$"), facts({ branch: b }));
      expect(e.passed).toBe(false);
      expect(e.reason).toBe(
        "branch unknown: pass branch or register the release intent with its branch (required pattern ^main$)",
      );
    }
  });

  it("matches unicode branch names (RE2 u flag)", () => {
    expect(evaluatePolicy(branch("b", "^feat/\\p{L}+$"), facts({ branch: "feat/ünïcode" })).passed).toBe(true);
  });
});

describe("evaluatePolicy: external approval", () => {
  it("does not pass without a release intent", () => {
    const e = evaluatePolicy(approval("a", 2), facts());
    expect(e.passed).toBe(false);
    expect(e.approval).toEqual({ requiredApprovals: 2, currentApprovals: 0, decisions: [] });
  });

  it("is awaiting approval with no votes", () => {
    const e = evaluatePolicy(approval("a", 2), facts({ releaseIntentId: INTENT }));
    expect(e).toMatchObject({ passed: false, reason: "awaiting approval: 0/2" });
  });
});

describe("evaluatePolicies", () => {
  it("passes with no policies at all", () => {
    expect(evaluatePolicies([], facts())).toEqual({ evaluations: [], allPassed: true });
  });

  it("evaluates only enabled policies for the target environment, in name order", () => {
    const policies = [
      branch("zeta", "^main$"),
      soak("alpha", 60),
      soak("disabled", 60, "staging", "prod"),
      branch("other-env", "^nope$", "staging"),
      branch("mid", "main"),
    ];
    const disabled = { ...policies[2]!, enabled: false };
    const list = [policies[0]!, policies[1]!, disabled, policies[3]!, policies[4]!];
    const result = evaluatePolicies(
      list,
      facts({ branch: "main", lastSuccessfulDeploy: new Map([["staging", secondsAgo(61)]]) }),
    );
    expect(result.evaluations.map((e) => e.policyName)).toEqual(["alpha", "mid", "zeta"]);
    expect(result.allPassed).toBe(true);
    expect(applicablePolicies(list, "staging").map((p) => p.name)).toEqual(["other-env"]);
  });

  it("all_passed is false when any evaluation fails", () => {
    const result = evaluatePolicies([branch("a", "^main$"), soak("b", 60)], facts({ branch: "main" }));
    expect(result.evaluations.map((e) => e.passed)).toEqual([true, false]);
    expect(result.allPassed).toBe(false);
  });

  it("does not reorder the caller's array", () => {
    const list = [soak("b", 1), soak("a", 1)];
    evaluatePolicies(list, facts());
    expect(list.map((p) => p.name)).toEqual(["b", "a"]);
  });
});
