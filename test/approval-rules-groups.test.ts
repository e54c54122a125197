import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Approval rules ("N from each group", a minimum role, distinct approvers)
// over the wire, on the engine DATABASE_URL selects (Postgres) or PGlite.

const project = { organisation: "acme", project: "web" };

type RuleInit = { group?: string; minRole?: string; requiredApprovals: number };
const approvalPolicy = (name: string, requiredApprovals: number, rules: RuleInit[], distinctApprovers = false) => ({
  project,
  name,
  policyType: PolicyType.EXTERNAL_APPROVAL,
  config: {
    case: "externalApproval" as const,
    value: { targetEnvironment: "prod", requiredApprovals, rules, distinctApprovers },
  },
});

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
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
