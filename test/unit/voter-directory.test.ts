import { describe, expect, it } from "vitest";
import { describeJudgement, type RulesJudgement } from "../../src/approval/judge-rules.js";
import { directoryNeeds, MAY_STILL_APPROVE_SHOWN } from "../../src/approval/voter-directory.js";
import type { ApprovalRule, ExternalApprovalConfig } from "../../src/policy/policy.js";

const policy = (rules: ApprovalRule[], targetEnvironment = "prod") => ({
  config: { kind: "external_approval", targetEnvironment, requiredApprovals: 1, rules } satisfies ExternalApprovalConfig,
});

describe("what an evaluation reads of the directory", () => {
  it("reads nothing for policies without rules", () => {
    expect(directoryNeeds([policy([])])).toBeUndefined();
    expect(directoryNeeds([{ config: { kind: "soak_time", sourceEnvironment: "qa", targetEnvironment: "prod", durationSeconds: 1 } }])).toBeUndefined();
  });

  it("names each group and minimum role once, sorted", () => {
    const needs = directoryNeeds([
      policy([{ group: "sre", requiredApprovals: 1 }, { minRole: "maintainer", requiredApprovals: 1 }]),
      policy([{ group: "security", requiredApprovals: 1 }, { group: "sre", requiredApprovals: 1 }, { minRole: "admin", requiredApprovals: 1 }]),
    ]);
    expect(needs?.groups).toEqual(["security", "sre"]);
    expect(needs?.minRoles).toEqual(["admin", "maintainer"]);
  });

  it("reads one more candidate than shown, or than one policy's rules need in total", () => {
    expect(directoryNeeds([policy([{ group: "sre", requiredApprovals: 2 }])])?.candidateLimit).toBe(MAY_STILL_APPROVE_SHOWN + 1);
    const big = policy([{ group: "sre", requiredApprovals: 7 }, { minRole: "member", requiredApprovals: 3 }]);
    expect(directoryNeeds([big, policy([{ group: "sre", requiredApprovals: 9 }])])?.candidateLimit).toBe(11);
  });
});

describe("the reason's list of who may still approve", () => {
  const judged = (may: string[], openEnded: boolean): RulesJudgement => ({
    passed: false,
    countedApprovals: 0,
    progress: [{ rule: "group:sre", requiredApprovals: 2, currentApprovals: 0, approvedBy: [], mayStillApprove: may, openEnded }],
    lapsed: [],
    unmeetable: [],
  });

  it("names up to five people", () => {
    expect(describeJudgement(judged(["a", "b", "c", "d", "e"], false))).toBe("sre 0/2 (may still approve: a, b, c, d, e)");
  });

  it("counts the rest, and says when the list was cut", () => {
    expect(describeJudgement(judged(["a", "b", "c", "d", "e", "f", "g"], false))).toBe("sre 0/2 (may still approve: a, b, c, d, e and 2 more)");
    expect(describeJudgement(judged(["a", "b", "c", "d", "e", "f"], true))).toBe("sre 0/2 (may still approve: a, b, c, d, e and 1 more, or others)");
  });
});
