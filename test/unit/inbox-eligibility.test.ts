import { describe, expect, it } from "vitest";
import type { ApproverGroup, RoleGrant } from "../../src/approver/directory.js";
import type { Policy } from "../../src/policy/policy.js";
import {
  type InboxViewer,
  mayApproveAt,
  mayHaveInbox,
  ruleGroupNames,
  viewerDirectory,
} from "../../src/requests/inbox-eligibility.js";

// Who sees a pending request in their inbox, decided once per project and
// environment from plain values: policies, the viewer's token and grants, groups.

const now = new Date("2026-06-01T10:00:00Z");
const later = new Date("2026-06-02T10:00:00Z");
const earlier = new Date("2026-05-01T10:00:00Z");

type RuleSpec = { group: string; requiredApprovals: number } | { minRole: "member" | "maintainer" | "admin"; requiredApprovals: number };

function approval(name: string, environment: string, rules: RuleSpec[] = [], enabled = true): Policy {
  return {
    id: `p-${name}`,
    project: { organisation: "acme", project: "web" },
    name,
    enabled,
    config: { kind: "external_approval", targetEnvironment: environment, requiredApprovals: 1, rules },
    createdAt: earlier,
    updatedAt: earlier,
  };
}

const soak: Policy = {
  ...approval("soak", "prod"),
  config: { kind: "soak_time", targetEnvironment: "prod", durationSeconds: 60 } as unknown as Policy["config"],
};

function viewer(userId: string, tokenRole?: InboxViewer["tokenRole"], more: Partial<InboxViewer> = {}): InboxViewer {
  return { organisation: "acme", userId, ...(tokenRole ? { tokenRole } : {}), idpGroups: [], grants: [], ...more };
}

function grant(userId: string, role: RoleGrant["role"], scope: RoleGrant["scope"], expiresAt?: Date): RoleGrant {
  return {
    id: `g-${userId}-${role}`,
    organisation: "acme",
    userId,
    role,
    scope,
    grantedAt: earlier,
    grantedBy: "ada",
    ...(expiresAt ? { expiresAt } : {}),
  };
}

function group(name: string, members: { userId: string; expiresAt?: Date }[], idpGroup?: string): ApproverGroup {
  return {
    organisation: "acme",
    name,
    ...(idpGroup ? { idpGroup } : {}),
    createdAt: earlier,
    createdBy: "ada",
    members: members.map((m) => ({
      organisation: "acme",
      groupName: name,
      userId: m.userId,
      displayName: m.userId,
      scope: { kind: "organisation", id: "" },
      addedAt: earlier,
      addedBy: "ada",
      ...(m.expiresAt ? { expiresAt: m.expiresAt } : {}),
    })),
  };
}

const at = { project: "web", environment: "prod" };
const groups = new Map([
  ["sre", group("sre", [{ userId: "rob" }, { userId: "tem", expiresAt: later }, { userId: "old", expiresAt: earlier }])],
  ["ops", group("ops", [], "okta-ops")],
]);
const decide = (policies: Policy[], v: InboxViewer, when = now) =>
  mayApproveAt(policies, v, viewerDirectory(v, groups, at, when));

describe("mayApproveAt", () => {
  it("lets any member approve where a gate policy has no rules", () => {
    expect(decide([approval("gate", "prod")], viewer("bob", "member"))).toBe(true);
  });

  it("refuses a viewer even where a policy has no rules (viewers cannot vote)", () => {
    expect(decide([approval("gate", "prod")], viewer("vic", "viewer"))).toBe(false);
  });

  it("counts a member grant covering the project for a viewer", () => {
    const v = viewer("vic", "viewer", { grants: [grant("vic", "member", { kind: "project", id: "web" })] });
    expect(decide([approval("gate", "prod")], v)).toBe(true);
  });

  it("ignores a grant scoped to another environment", () => {
    const v = viewer("vic", "viewer", { grants: [grant("vic", "member", { kind: "environment", id: "web/staging" })] });
    expect(decide([approval("gate", "prod")], v)).toBe(false);
  });

  it("shows nothing where no enabled approval policy gates the environment", () => {
    const v = viewer("bob", "member");
    expect(decide([approval("gate", "staging")], v)).toBe(false);
    expect(decide([approval("gate", "prod", [], false)], v)).toBe(false);
    expect(decide([soak], v)).toBe(false);
  });

  it("with group rules, shows it to active members only", () => {
    const policies = [approval("gate", "prod", [{ group: "sre", requiredApprovals: 1 }])];
    expect(decide(policies, viewer("rob", "member"))).toBe(true);
    expect(decide(policies, viewer("bob", "member"))).toBe(false);
    expect(decide(policies, viewer("old", "member"))).toBe(false);
    expect(decide(policies, viewer("tem", "member"))).toBe(true);
    expect(decide(policies, viewer("tem", "member"), later)).toBe(false);
  });

  it("with a group mapped to an identity-provider group, shows it to the token's group holders", () => {
    const policies = [approval("gate", "prod", [{ group: "ops", requiredApprovals: 1 }])];
    expect(decide(policies, viewer("ida", "member", { idpGroups: ["okta-ops"] }))).toBe(true);
    expect(decide(policies, viewer("ida", "member", { idpGroups: ["okta-dev"] }))).toBe(false);
  });

  it("with a role rule, judges the effective role (token raised by active grants)", () => {
    const policies = [approval("gate", "prod", [{ minRole: "maintainer", requiredApprovals: 1 }])];
    expect(decide(policies, viewer("bob", "member"))).toBe(false);
    expect(decide(policies, viewer("max", "maintainer"))).toBe(true);
    const raised = viewer("bob", "member", { grants: [grant("bob", "maintainer", { kind: "project", id: "web" }, later)] });
    expect(decide(policies, raised)).toBe(true);
    expect(decide(policies, raised, later)).toBe(false);
  });

  it("a policy without rules next to one with rules lets every member approve (the vote is taken)", () => {
    const policies = [approval("a", "prod", [{ group: "sre", requiredApprovals: 1 }]), approval("b", "prod")];
    expect(decide(policies, viewer("bob", "member"))).toBe(true);
  });

  it("a group member who is only a viewer cannot vote, so does not see it", () => {
    const policies = [approval("gate", "prod", [{ group: "sre", requiredApprovals: 1 }])];
    expect(decide(policies, viewer("rob", "viewer"))).toBe(false);
  });
});

describe("mayHaveInbox", () => {
  it("members and above have an inbox; viewers and outsiders do not", () => {
    expect(mayHaveInbox(viewer("bob", "member"), {}, now)).toBe(true);
    expect(mayHaveInbox(viewer("ada", "admin"), {}, now)).toBe(true);
    expect(mayHaveInbox(viewer("vic", "viewer"), {}, now)).toBe(false);
    expect(mayHaveInbox(viewer("zed"), {}, now)).toBe(false);
  });

  it("a viewer with an active member grant has an inbox where the grant could apply", () => {
    const v = viewer("vic", "viewer", { grants: [grant("vic", "member", { kind: "environment", id: "web/prod" }, later)] });
    expect(mayHaveInbox(v, {}, now)).toBe(true);
    expect(mayHaveInbox(v, { project: "web" }, now)).toBe(true);
    expect(mayHaveInbox(v, { project: "web", environment: "prod" }, now)).toBe(true);
    expect(mayHaveInbox(v, { project: "web", environment: "staging" }, now)).toBe(false);
    expect(mayHaveInbox(v, { project: "api" }, now)).toBe(false);
    expect(mayHaveInbox(v, {}, later)).toBe(false);
  });

  it("ignores viewer grants and grants of another organisation", () => {
    const v = viewer("vic", "viewer", {
      grants: [grant("vic", "viewer", { kind: "organisation", id: "" }), { ...grant("vic", "admin", { kind: "organisation", id: "" }), organisation: "other" }],
    });
    expect(mayHaveInbox(v, {}, now)).toBe(false);
  });
});

describe("ruleGroupNames", () => {
  it("names the groups of enabled approval policies' rules, once, sorted", () => {
    const policies = [
      approval("a", "prod", [{ group: "sre", requiredApprovals: 1 }, { minRole: "admin", requiredApprovals: 1 }]),
      approval("b", "staging", [{ group: "ops", requiredApprovals: 1 }, { group: "sre", requiredApprovals: 1 }]),
      approval("c", "prod", [{ group: "off", requiredApprovals: 1 }], false),
    ];
    expect(ruleGroupNames(policies)).toEqual(["ops", "sre"]);
  });
});
