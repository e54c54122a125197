import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalQueryService } from "../src/gen/releasegate/v1/approval_query_pb.js";
import { ApproverService } from "../src/gen/releasegate/v1/approver_pb.js";
import { registerIntent } from "./support/approval-fixtures.js";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

// Approval rules ("N from each group", a minimum role, distinct approvers)
// over the wire, on the engine DATABASE_URL selects (Postgres) or PGlite.

const project = { organisation: "acme", project: "web" };

type RuleInit = { group?: string; minRole?: string; requiredApprovals: number };
const approvalPolicy = (
  name: string,
  requiredApprovals: number,
  rules: RuleInit[],
  distinctApprovers = false,
  inProject: { organisation: string; project: string } = project,
) => ({
  project: inProject,
  name,
  policyType: PolicyType.EXTERNAL_APPROVAL,
  config: {
    case: "externalApproval" as const,
    value: { targetEnvironment: "prod", requiredApprovals, rules, distinctApprovers },
  },
});

let server: TestServer;
let admin: string;
const clock = new ManualClock(Date.parse("2026-06-01T10:00:00Z"));
const member = (sub: string, groups?: string[]) =>
  token({ sub, orgs: { acme: "member" }, ...(groups !== undefined ? { groups } : {}) });

beforeAll(async () => {
  server = await startTestServer({ clock });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(() => server?.stop());

describe("rule configuration", () => {
  const refused = (rules: RuleInit[], message: string, distinct = false) =>
    expectRpcError(
      server.client(PolicyService, admin).createPolicy(approvalPolicy("bad", 1, rules, distinct)),
      Code.InvalidArgument,
      message,
    );

  it("stores and returns role rules and distinct_approvers", async () => {
    const client = server.client(PolicyService, admin);
    const { policy } = await client.createPolicy(
      approvalPolicy("roles", 2, [{ minRole: "maintainer", requiredApprovals: 1 }, { minRole: "admin", requiredApprovals: 1 }], true),
    );
    const listed = (await client.listPolicies({ project })).policies.find((p) => p.name === "roles");
    for (const p of [policy, listed]) {
      expect(p?.config.case).toBe("externalApproval");
      const value = p?.config.value as { rules: RuleInit[]; distinctApprovers: boolean };
      expect(value.rules.map((r) => [r.group, r.minRole, r.requiredApprovals])).toEqual([
        ["", "maintainer", 1],
        ["", "admin", 1],
      ]);
      expect(value.distinctApprovers).toBe(true);
    }
    await client.deletePolicy({ project, name: "roles" });
  });

  it("refuses a rule with both group and min_role", () =>
    refused(
      [{ group: "sre", minRole: "admin", requiredApprovals: 1 }],
      "external_approval.rules[0]: set only one of group and min_role",
    ));

  it("refuses a rule with neither", () =>
    refused([{ requiredApprovals: 1 }], "external_approval.rules[0]: set one of group (an approver group) or min_role"));

  it("refuses required_approvals outside 1..100", async () => {
    await refused([{ minRole: "admin", requiredApprovals: 0 }], "external_approval.rules[0].required_approvals: must be between 1 and 100");
    await refused([{ minRole: "admin", requiredApprovals: 101 }], "external_approval.rules[0].required_approvals: must be between 1 and 100");
  });

  it("refuses more than ten rules", () =>
    refused(
      Array.from({ length: 11 }, (_, i) => ({ group: `g${i}`, requiredApprovals: 1 })),
      "external_approval.rules: must have at most 10 rules",
    ));

  it("refuses a malformed group name", () =>
    refused(
      [{ group: "SRE", requiredApprovals: 1 }],
      `external_approval.rules[0].group: "SRE" is not a valid group name: use 1-63 characters a-z, 0-9 or '-', starting with a letter or digit`,
    ));

  it("refuses a role outside the ladder, and viewer", async () => {
    await refused(
      [{ minRole: "owner", requiredApprovals: 1 }],
      `external_approval.rules[0].min_role: "owner" is not a role a rule may require: use member, maintainer, admin`,
    );
    await refused(
      [{ minRole: "viewer", requiredApprovals: 1 }],
      `external_approval.rules[0].min_role: "viewer" is not a role a rule may require: use member, maintainer, admin`,
    );
  });

  it("refuses the same rule twice", () =>
    refused(
      [{ minRole: "admin", requiredApprovals: 1 }, { minRole: "admin", requiredApprovals: 2 }],
      "external_approval.rules[1]: repeats rules[0] (min_role admin): give one rule per group or role",
    ));

  it("refuses distinct_approvers without rules", () =>
    refused([], "external_approval.distinct_approvers: needs rules: it says how approvals count across rules", true));
});

// The cast: security = {sam, sec}, sre = {sam, rob}; alice authors every
// intent (registered by the pipeline); zed is a member in no group.
let groupsMade = false;
async function groups(): Promise<void> {
  if (groupsMade) return;
  groupsMade = true;
  const dir = server.client(ApproverService, admin);
  await dir.createApproverGroup({ organisation: "acme", name: "security" });
  await dir.createApproverGroup({ organisation: "acme", name: "sre" });
  for (const [group, userId] of [
    ["security", "sam"],
    ["security", "sec"],
    ["sre", "sam"],
    ["sre", "rob"],
  ] as const)
    await dir.addGroupMember({ organisation: "acme", group, userId, scope: "organisation" });
}

let projects = 0;
/** A fresh project with one approval policy on prod and one intent by alice; returns both. */
async function gate(requiredApprovals: number, rules: RuleInit[], distinct: boolean) {
  await groups();
  const where = { organisation: "acme", project: `rules-${++projects}` };
  await server.client(PolicyService, admin).createPolicy(approvalPolicy("gate", requiredApprovals, rules, distinct, where));
  const pipeline = await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true });
  const intent = await registerIntent(server, pipeline, where);
  return { where, intent };
}

async function approve(tok: string, where: { organisation: string; project: string }, intent: string) {
  return server.client(PolicyService, tok).externalApproveRelease({
    project: where,
    releaseIntentId: intent,
    targetEnvironment: "prod",
  });
}

async function evaluation(where: { organisation: string; project: string }, intent: string) {
  const res = await server
    .client(PolicyService, admin)
    .evaluatePolicies({ project: where, targetEnvironment: "prod", releaseIntentId: intent });
  const e = res.evaluations.find((x) => x.policyName === "gate");
  return { passed: res.allPassed, reason: e?.reason ?? "", progress: e?.externalApprovalState?.ruleProgress ?? [] };
}

const securityAndSre = [
  { group: "security", requiredApprovals: 1 },
  { group: "sre", requiredApprovals: 1 },
];

describe("counting approvals against rules", () => {
  it("counts a person in two groups for both rules without distinct_approvers", async () => {
    const { where, intent } = await gate(1, securityAndSre, false);
    await approve(await member("sam"), where, intent);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(true);
    expect(e.reason).toBe("approved: 1/1; security 1/1, sre 1/1");
  });

  it("counts a person in two groups once with distinct_approvers", async () => {
    const { where, intent } = await gate(1, securityAndSre, true);
    const state = await approve(await member("sam"), where, intent);
    expect(state.state?.ruleProgress.map((p) => [p.rule, p.currentApprovals, p.requiredApprovals])).toEqual([
      ["group:security", 1, 1],
      ["group:sre", 0, 1],
    ]);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(false);
    expect(e.reason).toBe("awaiting approval: 1/1; security 1/1, sre 0/1 (may still approve: rob)");
  });

  it("finds the assignment a greedy one misses (distinct_approvers)", async () => {
    // sam approves first; greedy gives sam security and has nobody for sre.
    const { where, intent } = await gate(2, securityAndSre, true);
    await approve(await member("sam"), where, intent);
    await approve(await member("sec"), where, intent);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(true);
    expect(e.progress.map((p) => [p.rule, [...p.approvedBy]])).toEqual([
      ["group:security", ["sec"]],
      ["group:sre", ["sam"]],
    ]);
  });

  it("needs the policy's own count of eligible approvals too", async () => {
    const { where, intent } = await gate(2, securityAndSre, false);
    await approve(await member("sam"), where, intent);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(false);
    expect(e.reason).toBe("awaiting approval: 1/2; security 1/1, sre 1/1");
  });
});

describe("eligibility", () => {
  it("refuses an approval from someone eligible for no rule, naming what would make them eligible", async () => {
    const { where, intent } = await gate(1, [...securityAndSre, { minRole: "maintainer", requiredApprovals: 1 }], false);
    await expectRpcError(
      approve(await member("zed"), where, intent),
      Code.PermissionDenied,
      `zed may not approve release intent ${intent} for prod in acme/${where.project}: join group security or sre, or hold role maintainer in acme/${where.project}`,
    );
    // A rejection is always a voice.
    await server
      .client(PolicyService, await member("zed"))
      .externalRejectRelease({ project: where, releaseIntentId: intent, targetEnvironment: "prod" });
  });

  it("lapses a removed member's approval, naming whose and why", async () => {
    const dir = server.client(ApproverService, admin);
    await dir.createApproverGroup({ organisation: "acme", name: "dba" });
    await dir.addGroupMember({ organisation: "acme", group: "dba", userId: "dora", scope: "organisation" });
    await dir.addGroupMember({ organisation: "acme", group: "dba", userId: "dirk", scope: "organisation" });
    const { where, intent } = await gate(1, [{ group: "dba", requiredApprovals: 1 }], false);
    await approve(await member("dora"), where, intent);
    expect((await evaluation(where, intent)).passed).toBe(true);
    await dir.removeGroupMember({ organisation: "acme", group: "dba", userId: "dora" });
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(false);
    expect(e.reason).toBe(
      "awaiting approval: 0/1; dba 0/1 (may still approve: dirk); dora's approval lapsed: no longer a member of dba",
    );
  });

  it("lapses an approval when the membership expires, at expires_at", async () => {
    const dir = server.client(ApproverService, admin);
    await dir.createApproverGroup({ organisation: "acme", name: "temps" });
    const expiresAt = new Date(clock.now().getTime() + 3600_000).toISOString();
    await dir.addGroupMember({ organisation: "acme", group: "temps", userId: "tia", scope: "organisation", expiresAt });
    const { where, intent } = await gate(1, [{ group: "temps", requiredApprovals: 1 }], false);
    await approve(await member("tia"), where, intent);
    clock.advance(3599);
    expect((await evaluation(where, intent)).passed).toBe(true);
    clock.advance(1);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(false);
    expect(e.reason).toContain("tia's approval lapsed: no longer a member of temps");
  });

  it("takes identity-provider groups from the token's groups claim, recorded with the vote", async () => {
    const dir = server.client(ApproverService, admin);
    await dir.createApproverGroup({ organisation: "acme", name: "oncall", idpGroup: "okta-oncall" });
    // No managed members: an idp-mapped group cannot be checked at configuration time, and is accepted.
    const { where, intent } = await gate(1, [{ group: "oncall", requiredApprovals: 1 }], false);
    await expectRpcError(approve(await member("ivan"), where, intent), Code.PermissionDenied, /join group oncall/);
    const state = await approve(await member("ivy", ["okta-oncall", "staff"]), where, intent);
    expect(state.state?.ruleProgress[0]).toMatchObject({ rule: "group:oncall", currentApprovals: 1, openEnded: true });
    expect((await evaluation(where, intent)).passed).toBe(true);
  });

  it("counts a role rule by effective role, grants included", async () => {
    const { where, intent } = await gate(1, [{ minRole: "maintainer", requiredApprovals: 1 }], false);
    await expectRpcError(approve(await member("gus"), where, intent), Code.PermissionDenied, /hold role maintainer/);
    await server.client(ApproverService, admin).grantRole({
      organisation: "acme",
      userId: "gus",
      role: "maintainer",
      scope: "project",
      scopeId: where.project,
    });
    await approve(await member("gus"), where, intent);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(true);
    expect(e.reason).toBe("approved: 1/1; role:maintainer 1/1");
  });

  it("says when a rule cannot be met without the author", async () => {
    const dir = server.client(ApproverService, admin);
    await dir.createApproverGroup({ organisation: "acme", name: "pair" });
    await dir.addGroupMember({ organisation: "acme", group: "pair", userId: "alice", scope: "organisation" });
    await dir.addGroupMember({ organisation: "acme", group: "pair", userId: "pat", scope: "organisation" });
    const { where, intent } = await gate(1, [{ group: "pair", requiredApprovals: 2 }], false);
    const e = await evaluation(where, intent);
    expect(e.passed).toBe(false);
    expect(e.reason).toBe(
      "awaiting approval: 0/1; pair 0/2 (may still approve: pat); group:pair cannot be met: too few eligible people remain besides the author and registrant (needs 2, 1 eligible)",
    );
  });
});

describe("configuration-time refusal", () => {
  it("refuses a rule whose group has fewer active members than it requires", async () => {
    await groups();
    await expectRpcError(
      server.client(PolicyService, admin).createPolicy(approvalPolicy("too-many", 1, [{ group: "sre", requiredApprovals: 3 }])),
      Code.FailedPrecondition,
      "external_approval.rules[0]: rule group:sre requires 3 approvals but group sre has 2 active members for acme/web prod; add members or lower required_approvals",
    );
  });

  it("refuses a rule naming a group that does not exist", () =>
    expectRpcError(
      server.client(PolicyService, admin).createPolicy(approvalPolicy("ghost", 1, [{ group: "ghosts", requiredApprovals: 1 }])),
      Code.FailedPrecondition,
      "external_approval.rules[0].group: group ghosts does not exist in acme; create it (releasegate groups create) first",
    ));

  it("refuses distinct rules that the known people cannot fill, on update too", async () => {
    await groups();
    const client = server.client(PolicyService, admin);
    await client.createPolicy(approvalPolicy("upd", 1, [{ group: "sre", requiredApprovals: 1 }]));
    // sre = {sam, rob}, security = {sam, sec}: 2 from sre and 1 from security need three people.
    await expectRpcError(
      client.updatePolicy({
        project,
        name: "upd",
        enabled: true,
        config: approvalPolicy("upd", 1, [
          { group: "sre", requiredApprovals: 2 },
          { group: "security", requiredApprovals: 2 },
        ], true).config,
      }),
      Code.FailedPrecondition,
      /^external_approval\.rules\[\d\]: with distinct_approvers each person fills one rule, and the 3 known eligible people for acme\/web prod cannot fill every rule/,
    );
    await client.deletePolicy({ project, name: "upd" });
  });
});

describe("who may still approve", () => {
  it("lists each rule's count, who approved and who may still, without author, registrant or voters", async () => {
    const dir = server.client(ApproverService, admin);
    await groups();
    await dir.addGroupMember({ organisation: "acme", group: "security", userId: "alice", scope: "organisation" });
    await dir.addGroupMember({ organisation: "acme", group: "security", userId: "reg", scope: "organisation" });
    const reg = await member("reg");
    const where = { organisation: "acme", project: "who" };
    await server.client(PolicyService, admin).createPolicy(
      approvalPolicy("gate", 1, [{ group: "security", requiredApprovals: 2 }, { group: "sre", requiredApprovals: 1 }], false, where),
    );
    const intent = await registerIntent(server, await token({ sub: "reg", orgs: { acme: "admin" } }), where);
    await approve(await member("sec"), where, intent);
    await server
      .client(PolicyService, await member("rob"))
      .externalRejectRelease({ project: where, releaseIntentId: intent, targetEnvironment: "prod" });
    const res = await server
      .client(ApprovalQueryService, reg)
      .listEligibleApprovers({ project: where, releaseIntentId: intent, targetEnvironment: "PROD" });
    expect(
      res.rules.map((r) => ({
        rule: r.rule,
        required: r.requiredApprovals,
        current: r.currentApprovals,
        approvedBy: [...r.approvedBy],
        may: [...r.mayStillApprove],
        openEnded: r.openEnded,
      })),
    ).toEqual([
      { rule: "group:security", required: 2, current: 1, approvedBy: ["sec"], may: ["sam"], openEnded: false },
      { rule: "group:sre", required: 1, current: 0, approvedBy: [], may: ["sam"], openEnded: false },
    ]);
    await dir.removeGroupMember({ organisation: "acme", group: "security", userId: "alice" });
    await dir.removeGroupMember({ organisation: "acme", group: "security", userId: "reg" });
  });

  it("answers NOT_FOUND for an unknown intent and no rules for a policy without them", async () => {
    const where = { organisation: "acme", project: "plain" };
    await server.client(PolicyService, admin).createPolicy(approvalPolicy("gate", 1, [], false, where));
    const intent = await registerIntent(server, admin, where);
    const q = server.client(ApprovalQueryService, await member("zed"));
    expect((await q.listEligibleApprovers({ project: where, releaseIntentId: intent, targetEnvironment: "prod" })).rules).toEqual([]);
    await expectRpcError(
      q.listEligibleApprovers({ project: where, releaseIntentId: "0b8f6a52-8c3e-4b8e-9b7a-3f4f0c1d2e3a", targetEnvironment: "prod" }),
      Code.NotFound,
      /release intent 0b8f6a52-8c3e-4b8e-9b7a-3f4f0c1d2e3a/,
    );
  });
});

describe("releasegate approvers (CLI)", () => {
  // The CLI runs from dist/: build it once (shared with other test files).
  beforeAll(() => ensureBuilt(), 240_000);

  it("prints each rule's progress and who may still approve", async () => {
    const { where, intent } = await gate(1, securityAndSre, true);
    await approve(await member("sam"), where, intent);
    const env = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await member("zed") };
    const args = ["approvers", "--project", `acme/${where.project}`, "--intent", intent, "--env", "prod"];
    const json = await runCli(["-o", "json", ...args], env);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      rules: [
        {
          rule: "group:security",
          requiredApprovals: 1,
          currentApprovals: 1,
          approvedBy: ["sam"],
          mayStillApprove: ["sec"],
          openEnded: false,
        },
        { rule: "group:sre", requiredApprovals: 1, currentApprovals: 0, approvedBy: [], mayStillApprove: ["rob"], openEnded: false },
      ],
    });
    const table = await runCli(args, env);
    expect(table.stdout).toMatch(/group:sre\s+0\/1\s+-\s+rob/);
  });
});
