import { describe, expect, it } from "vitest";
import { approvalPoliciesFor, decisionKindFor, gateState } from "../src/approval/rules.js";
import { type Vote, withVote } from "../src/approval/vote.js";
import { PermissionDeniedError } from "../src/errors.js";
import type { Policy, PolicyConfig } from "../src/policy/policy.js";

const at = new Date("2026-01-01T00:00:00Z");
const policy = (name: string, config: PolicyConfig, enabled = true): Policy => ({
  id: name,
  project: { organisation: "acme", project: "web" },
  name,
  enabled,
  config,
  createdAt: at,
  updatedAt: at,
});
const approval = (name: string, env: string, n: number, enabled = true) =>
  policy(name, { kind: "external_approval", targetEnvironment: env, requiredApprovals: n }, enabled);
const vote = (userId: string, decision: Vote["decision"]): Vote => ({
  userId,
  username: userId,
  decision,
  decisionKind: "peer",
  decidedAt: at,
});

describe("decisionKindFor (four-eyes rule)", () => {
  const base = {
    voterId: "bob",
    authorId: "alice",
    voterIsAdmin: false,
    forceBypass: false,
    intentId: "i-1",
    registrantId: "alice",
    registrantIsUser: true,
  } as const;
  const proxied = { ...base, registrantId: "ada" } as const;

  it.each([
    ["a member approving someone else's intent", { ...base, decision: "approved" }, "peer"],
    ["a member rejecting someone else's intent", { ...base, decision: "rejected" }, "peer"],
    ["the author rejecting their own intent", { ...base, voterId: "alice", decision: "rejected" }, "peer"],
    ["an admin bypassing on someone else's intent", { ...base, voterIsAdmin: true, forceBypass: true, decision: "approved" }, "peer"],
    [
      "an admin author bypassing",
      { ...base, voterId: "alice", voterIsAdmin: true, forceBypass: true, decision: "approved" },
      "admin_override",
    ],
    ["the registrant rejecting an intent they registered for another author", { ...proxied, voterId: "ada", decision: "rejected" }, "peer"],
    [
      "an admin registrant bypassing on an intent they registered for another author",
      { ...proxied, voterId: "ada", voterIsAdmin: true, forceBypass: true, decision: "approved" },
      "admin_override",
    ],
    [
      "the voter who is a service registrant's namesake (pipelines are no second pair of eyes to exclude)",
      { ...proxied, registrantId: "bob", registrantIsUser: false, decision: "approved" },
      "peer",
    ],
    ["a third person approving a proxied intent", { ...proxied, decision: "approved" }, "peer"],
  ] as const)("allows %s", (_name, input, kind) => {
    expect(decisionKindFor(input)).toBe(kind);
  });

  it.each([
    ["the author approving without bypass", { ...base, voterId: "alice", decision: "approved" }, /is the author/],
    ["an admin author approving without bypass", { ...base, voterId: "alice", voterIsAdmin: true, decision: "approved" }, /is the author/],
    ["a non-admin author bypassing", { ...base, voterId: "alice", forceBypass: true, decision: "approved" }, /^force_bypass:/],
    ["a non-admin bypassing someone else's intent", { ...base, forceBypass: true, decision: "approved" }, /^force_bypass:/],
    [
      "the registrant approving an intent they registered for another author",
      { ...proxied, voterId: "ada", decision: "approved" },
      /^ada registered release intent i-1 for author alice and cannot approve it \(four eyes cover the registrant\)/,
    ],
    [
      "an admin registrant approving without bypass",
      { ...proxied, voterId: "ada", voterIsAdmin: true, decision: "approved" },
      /four eyes cover the registrant/,
    ],
  ] as const)("denies %s", (_name, input, message) => {
    expect(() => decisionKindFor(input)).toThrow(PermissionDeniedError);
    expect(() => decisionKindFor(input)).toThrow(message);
  });
});

describe("approvalPoliciesFor", () => {
  it("keeps only enabled approval policies for the environment", () => {
    const all = [
      approval("prod-2", "prod", 2),
      approval("prod-off", "prod", 5, false),
      approval("staging-1", "staging", 1),
      policy("soak", { kind: "soak_time", sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60 }),
    ];
    expect(approvalPoliciesFor(all, "prod").map((p) => p.name)).toEqual(["prod-2"]);
    expect(approvalPoliciesFor(all, "dev")).toEqual([]);
  });
});

describe("gateState", () => {
  const gate = [approval("one", "prod", 1), approval("three", "prod", 3)];

  it("shows the strictest policy and passes only when all pass", () => {
    const two = gateState(gate, [vote("bob", "approved"), vote("carol", "rejected"), vote("dave", "approved")]);
    expect(two.strictest).toMatchObject({ requiredApprovals: 3, currentApprovals: 2 });
    expect(two.passed).toBe(false);
    const three = gateState(gate, [vote("bob", "approved"), vote("carol", "approved"), vote("dave", "approved")]);
    expect(three.passed).toBe(true);
  });

  it("keeps the votes in the order given (first cast)", () => {
    const votes = [vote("zed", "approved"), vote("amy", "rejected")];
    expect(gateState(gate, votes).strictest.decisions.map((v) => v.userId)).toEqual(["zed", "amy"]);
  });
});

describe("withVote", () => {
  const at = new Date("2026-01-01T00:00:00Z");
  const v = (userId: string, decision: "approved" | "rejected", comment?: string): Vote => ({
    userId,
    username: userId,
    decision,
    decisionKind: "peer",
    decidedAt: at,
    ...(comment !== undefined ? { comment } : {}),
  });

  it("appends a first vote", () => {
    expect(withVote([v("ann", "approved")], v("bob", "rejected"))).toEqual([v("ann", "approved"), v("bob", "rejected")]);
  });

  it("replaces a changed vote where it was first cast, comment and all", () => {
    const before = [v("ann", "rejected", "not yet"), v("bob", "approved")];
    expect(withVote(before, v("ann", "approved"))).toEqual([v("ann", "approved"), v("bob", "approved")]);
    expect(before[0]?.decision).toBe("rejected");
  });
});
