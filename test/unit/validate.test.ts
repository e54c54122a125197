import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { compileBranchPattern } from "../../src/policy/branch-pattern.js";
import type { PolicyConfig } from "../../src/policy/policy.js";
import {
  requireName,
  requirePolicyName,
  requireProject,
  requireUuid,
  validatePolicyConfig,
} from "../../src/policy/validate.js";

function invalid(fn: () => unknown): { field: string; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const e = err as InvalidArgumentError;
    return { field: e.field, message: e.message };
  }
  throw new Error("expected InvalidArgumentError");
}

describe("requirePolicyName", () => {
  it("accepts 1..63 chars of [a-z0-9-]", () => {
    expect(requirePolicyName("a")).toBe("a");
    expect(requirePolicyName("soak-staging-2")).toBe("soak-staging-2");
    expect(requirePolicyName("x".repeat(63))).toBe("x".repeat(63));
  });

  it("rejects an empty name", () => {
    expect(invalid(() => requirePolicyName(""))).toEqual({ field: "name", message: "name: is required" });
  });

  it("rejects a 64-character name", () => {
    expect(invalid(() => requirePolicyName("x".repeat(64))).message).toBe("name: must be at most 63 characters");
  });

  it.each(["Upper", "under_score", "spa ce", "dot.ted", "émoji", "slash/"])("rejects %j", (name) => {
    expect(invalid(() => requirePolicyName(name)).message).toBe(
      "name: may contain only lowercase letters, digits and '-'",
    );
  });
});

describe("requireProject / requireName", () => {
  it("requires the project", () => {
    expect(invalid(() => requireProject(undefined)).message).toBe("project: is required");
  });

  it("names the missing organisation and project", () => {
    expect(invalid(() => requireProject({ organisation: "", project: "web" })).message).toBe(
      "project.organisation: is required",
    );
    expect(invalid(() => requireProject({ organisation: "acme", project: "  " })).message).toBe(
      "project.project: is required",
    );
  });

  it("rejects control characters and overlong names", () => {
    expect(invalid(() => requireName("a\nb", "environment")).message).toBe(
      "environment: must not contain control characters",
    );
    expect(invalid(() => requireName("x".repeat(201), "environment")).message).toBe(
      "environment: must be at most 200 characters",
    );
  });
});

describe("requireUuid", () => {
  it("normalises to lowercase", () => {
    expect(requireUuid("0B8F6A52-8C3E-4B8E-9B7A-3F4F0C1D2E3A", "id")).toBe("0b8f6a52-8c3e-4b8e-9b7a-3f4f0c1d2e3a");
  });

  it("rejects malformed UUIDs", () => {
    expect(invalid(() => requireUuid("not-a-uuid", "release_intent_id")).message).toBe(
      "release_intent_id: must be a UUID",
    );
    expect(invalid(() => requireUuid("", "release_intent_id")).message).toBe("release_intent_id: is required");
  });
});

describe("validatePolicyConfig", () => {
  const soak = (over: Partial<Extract<PolicyConfig, { kind: "soak_time" }>> = {}): PolicyConfig => ({
    kind: "soak_time",
    sourceEnvironment: "staging",
    targetEnvironment: "prod",
    durationSeconds: 60,
    ...over,
  });

  it("accepts a valid soak config", () => {
    expect(validatePolicyConfig(soak(), "soak_time")).toEqual(soak());
  });

  it("rejects a fractional soak duration", () => {
    expect(invalid(() => validatePolicyConfig(soak({ durationSeconds: 1.5 }), "soak_time")).message).toBe(
      "soak_time.duration_seconds: must be a whole number of seconds",
    );
  });

  it.each([0, -5, Number.NaN, Number.NEGATIVE_INFINITY])("rejects soak duration %s", (d) => {
    expect(invalid(() => validatePolicyConfig(soak({ durationSeconds: d }), "soak_time"))).toEqual({
      field: "soak_time.duration_seconds",
      message: "soak_time.duration_seconds: must be greater than 0",
    });
  });

  it.each([10 * 365 * 24 * 3600 + 1, Number.POSITIVE_INFINITY])("rejects an absurd soak duration %s", (d) => {
    expect(invalid(() => validatePolicyConfig(soak({ durationSeconds: d }), "soak_time")).message).toBe(
      "soak_time.duration_seconds: must be at most 315360000 (10 years)",
    );
  });

  it("rejects empty environments", () => {
    expect(invalid(() => validatePolicyConfig(soak({ sourceEnvironment: "" }), "soak_time")).field).toBe(
      "soak_time.source_environment",
    );
    expect(invalid(() => validatePolicyConfig(soak({ targetEnvironment: "" }), "soak_time")).field).toBe(
      "soak_time.target_environment",
    );
  });

  it("rejects a soak from an environment into itself", () => {
    expect(
      invalid(() => validatePolicyConfig(soak({ sourceEnvironment: "prod" }), "soak_time")).message,
    ).toBe("soak_time.source_environment: must differ from target_environment");
  });

  it.each([0, 101, -1])("rejects required_approvals %s", (n) => {
    expect(
      invalid(() =>
        validatePolicyConfig(
          { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: n },
          "external_approval",
        ),
      ).message,
    ).toBe("external_approval.required_approvals: must be between 1 and 100");
  });

  it.each([1, 100])("accepts required_approvals %s", (n) => {
    const c: PolicyConfig = { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: n };
    expect(validatePolicyConfig(c, "external_approval")).toEqual(c);
  });

  const br = (pattern: string) => () =>
    validatePolicyConfig(
      { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: pattern },
      "branch_restriction",
    );

  it("rejects a branch pattern that does not compile", () => {
    const e = invalid(br("(unclosed"));
    expect(e.field).toBe("branch_restriction.branch_pattern");
    expect(e.message).toMatch(/^branch_restriction\.branch_pattern: not a valid RE2 pattern/);
  });

  it("rejects lookahead, which RE2 does not support", () => {
    expect(invalid(br("^(?=main)")).message).toMatch(/^branch_restriction\.branch_pattern: not a valid RE2 pattern/);
  });

  it("rejects backreferences", () => {
    expect(invalid(br("(a)\\1")).message).toMatch(/not a valid RE2 pattern/);
  });

  it("rejects an empty branch pattern", () => {
    expect(invalid(br("")).message).toBe("branch_restriction.branch_pattern: must not be empty");
  });

  it("accepts 256 characters and rejects 257", () => {
    expect(() => br("a".repeat(256))()).not.toThrow();
    expect(invalid(br("a".repeat(257))).message).toBe(
      "branch_restriction.branch_pattern: must be at most 256 characters",
    );
  });

  it("rejects an over-long pattern even after a valid one was cached", () => {
    compileBranchPattern("^main$");
    expect(invalid(() => compileBranchPattern("b".repeat(300), "p")).message).toBe(
      "p: must be at most 256 characters",
    );
  });

  it("matches branch names longer than the memo limit, repeatedly and correctly", () => {
    const m = compileBranchPattern("^release/[0-9]+$");
    const long = `release/${"1".repeat(10_000)}`;
    for (let i = 0; i < 3; i++) {
      expect(m.matches(long)).toBe(true);
      expect(m.matches(`${long}x`)).toBe(false);
    }
  });

  it("matches in linear time on a classic catastrophic-backtracking input", () => {
    const m = compileBranchPattern("^(a+)+$");
    const started = performance.now();
    expect(m.matches(`${"a".repeat(5000)}!`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
