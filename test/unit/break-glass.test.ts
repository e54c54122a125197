import { describe, expect, it } from "vitest";
import { breakGlassReason, requireBreakGlassReason } from "../../src/approval/break-glass-mark.js";
import { gateState } from "../../src/approval/rules.js";
import type { Vote } from "../../src/approval/vote.js";
import { evaluatePolicies } from "../../src/policy/evaluate.js";
import type { Policy, PolicyConfig } from "../../src/policy/policy.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const INTENT = "0b8f6a52-8c3e-4b8e-9b7a-3f4f0c1d2e3a";
const mark = { userId: "ada", username: "Ada", reason: "incident 42: payments down", recordedAt: new Date("2026-03-01T11:00:00Z") };
const REASON = "break-glass by ada at 2026-03-01T11:00:00.000Z: incident 42: payments down";

function policy(name: string, config: PolicyConfig): Policy {
  return { id: name, project: { organisation: "acme", project: "web" }, name, enabled: true, config, createdAt: NOW, updatedAt: NOW };
}
const approval = (name: string, required: number) =>
  policy(name, { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: required });
const vote = (userId: string, decision: "approved" | "rejected"): Vote => ({
  userId,
  username: userId,
  decision,
  decisionKind: "peer",
  decidedAt: NOW,
});

describe("break-glass reason", () => {
  it("says who, when (RFC 3339) and why", () => {
    expect(breakGlassReason(mark)).toBe(REASON);
  });

  it.each([
    ["empty", ""],
    ["nine characters", "123456789"],
    ["ten characters only with the padding", "   1234567   "],
    ["whitespace", " \t\n          "],
  ])("refuses %s", (_, reason) => {
    expect(() => requireBreakGlassReason(reason)).toThrow(/^reason: a break-glass needs a reason \(at least 10 characters\)/);
  });

  it("accepts 10 characters after trimming and 2000 in all, refuses 2001", () => {
    expect(requireBreakGlassReason(" 1234567890 ")).toBe(" 1234567890 ");
    expect(requireBreakGlassReason("x".repeat(2000))).toHaveLength(2000);
    expect(() => requireBreakGlassReason("x".repeat(2001))).toThrow("reason: must be at most 2000 characters (got 2001)");
  });
});

describe("break-glass in the rules", () => {
  it("passes every approval policy with the break-glass reason and the real counts, and nothing else", () => {
    const soak = policy("soak", { kind: "soak_time", sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60 });
    const branch = policy("branch", { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^release/" });
    const result = evaluatePolicies([approval("a1", 1), approval("a2", 3), soak, branch], {
      now: NOW,
      targetEnvironment: "prod",
      branch: "main",
      releaseIntentId: INTENT,
      lastSuccessfulDeploy: new Map(),
      votes: [vote("bob", "rejected")],
      breakGlass: mark,
    });
    expect(result.allPassed).toBe(false);
    expect(result.evaluations.map((e) => [e.policyName, e.passed, e.reason.slice(0, 20)])).toEqual([
      ["a1", true, REASON.slice(0, 20)],
      ["a2", true, REASON.slice(0, 20)],
      ["branch", false, "branch main does not"],
      ["soak", false, "soak time not met: n"],
    ]);
    expect(result.evaluations[1]?.reason).toBe(REASON);
    expect(result.evaluations[1]?.approval).toMatchObject({ requiredApprovals: 3, currentApprovals: 0, breakGlass: mark });
  });

  it("does not open anything without an intent", () => {
    const result = evaluatePolicies([approval("a1", 1)], {
      now: NOW,
      targetEnvironment: "prod",
      lastSuccessfulDeploy: new Map(),
      votes: [],
      breakGlass: mark,
    });
    expect(result.evaluations[0]).toMatchObject({ passed: false, reason: "approval required — no release intent" });
  });

  it("opens the vote gate: passed with the strictest policy's real counts", () => {
    const gate = [approval("a1", 1), approval("a2", 2)];
    expect(gateState(gate, [vote("bob", "approved")]).passed).toBe(false);
    const opened = gateState(gate, [vote("bob", "approved")], undefined, mark);
    expect(opened.passed).toBe(true);
    expect(opened.strictest).toMatchObject({ requiredApprovals: 2, currentApprovals: 1, breakGlass: mark });
  });
});
