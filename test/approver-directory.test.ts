import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApproverService } from "../src/gen/releasegate/v1/approver_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

// The approver directory over the wire: groups, memberships and role grants,
// each validation code, and who may write (organisation admins) and read
// (any role of the ladder).

const clock = new ManualClock(Date.parse("2026-03-04T05:06:07Z"));
const ORG = "acme";
let server: TestServer;
const tokens = {} as Record<"admin" | "member" | "viewer" | "service" | "outsider" | "owner", string>;

beforeAll(async () => {
  server = await startTestServer({ clock });
  tokens.admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  tokens.member = await token({ sub: "bob", orgs: { acme: "member" } });
  tokens.viewer = await token({ sub: "vera", orgs: { acme: "viewer" } });
  tokens.service = await token({ sub: "ci-bot", orgs: { acme: "member" }, service: true });
  tokens.outsider = await token({ sub: "mallory", orgs: { globex: "admin" } });
  tokens.owner = await token({ sub: "otto", orgs: { acme: "owner" as never } });
});
afterAll(() => server?.stop());

const inOneHour = () => new Date(clock.now().getTime() + 3600_000).toISOString();

describe.each(PROTOCOLS)("approver groups over %s", (protocol) => {
  const approvers = (tok = tokens.admin) => server.client(ApproverService, tok, protocol);
  const g = (name: string) => `${protocol}-${name}`;

  it("creates a group and answers it with its creator, time and identity-provider group", async () => {
    const res = await approvers().createApproverGroup({ organisation: ORG, name: g("sre"), idpGroup: "okta-sre" });
    expect(res.group).toMatchObject({
      organisation: ORG,
      name: g("sre"),
      idpGroup: "okta-sre",
      members: [],
      createdAt: clock.now().toISOString(),
      createdBy: "ada",
    });
  });

  it("refuses a second group of the same name with ALREADY_EXISTS", async () => {
    await approvers().createApproverGroup({ organisation: ORG, name: g("twice") });
    await expectRpcError(
      approvers().createApproverGroup({ organisation: ORG, name: g("twice") }),
      Code.AlreadyExists,
      `approver group ${g("twice")} already exists in organisation acme`,
    );
  });

  it("adds scoped and expiring members, lists them, replaces a membership on re-add and removes one", async () => {
    const name = g("security");
    await approvers().createApproverGroup({ organisation: ORG, name });
    const added = await approvers().addGroupMember({
      organisation: ORG,
      group: name,
      userId: "u-dana",
      displayName: "Dana",
      scope: "environment",
      scopeId: "web/PROD",
      expiresAt: inOneHour(),
    });
    expect(added.member).toMatchObject({
      userId: "u-dana",
      displayName: "Dana",
      scope: "environment",
      scopeId: "web/prod",
      expiresAt: inOneHour(),
      active: true,
      addedBy: "ada",
    });
    await approvers().addGroupMember({ organisation: ORG, group: name, userId: "u-erik", scope: "project", scopeId: "web" });
    await approvers().addGroupMember({ organisation: ORG, group: name, userId: "u-dana", scope: "organisation" });
    const listed = (await approvers(tokens.viewer).listApproverGroups({ organisation: ORG })).groups.find(
      (x) => x.name === name,
    );
    expect(listed?.members).toMatchObject([
      { userId: "u-dana", displayName: "u-dana", scope: "organisation", scopeId: "", expiresAt: "", active: true },
      { userId: "u-erik", scope: "project", scopeId: "web", active: true },
    ]);
    await approvers().removeGroupMember({ organisation: ORG, group: name, userId: "u-erik" });
    await expectRpcError(
      approvers().removeGroupMember({ organisation: ORG, group: name, userId: "u-erik" }),
      Code.NotFound,
      `u-erik is not a member of approver group ${name} in organisation acme`,
    );
  });

  it("marks a membership inactive once its expiry passes on the server's clock", async () => {
    const name = g("expiring");
    await approvers().createApproverGroup({ organisation: ORG, name });
    const start = clock.now();
    await approvers().addGroupMember({
      organisation: ORG,
      group: name,
      userId: "u-temp",
      scope: "organisation",
      expiresAt: new Date(start.getTime() + 60_000).toISOString(),
    });
    const active = async () =>
      (await approvers().listApproverGroups({ organisation: ORG })).groups.find((x) => x.name === name)?.members[0]
        ?.active;
    expect(await active()).toBe(true);
    clock.set(new Date(start.getTime() + 60_000));
    expect(await active()).toBe(false);
    clock.set(start);
  });

  it("deletes a group with its members; deleting or adding to a missing group is NOT_FOUND", async () => {
    const name = g("gone");
    await approvers().createApproverGroup({ organisation: ORG, name });
    await approvers().addGroupMember({ organisation: ORG, group: name, userId: "u-x", scope: "organisation" });
    await approvers().deleteApproverGroup({ organisation: ORG, name });
    const names = (await approvers().listApproverGroups({ organisation: ORG })).groups.map((x) => x.name);
    expect(names).not.toContain(name);
    const missing = `approver group ${name} not found in organisation acme`;
    await expectRpcError(approvers().deleteApproverGroup({ organisation: ORG, name }), Code.NotFound, missing);
    await expectRpcError(
      approvers().addGroupMember({ organisation: ORG, group: name, userId: "u-x", scope: "organisation" }),
      Code.NotFound,
      missing,
    );
    await expectRpcError(
      approvers().removeGroupMember({ organisation: ORG, group: name, userId: "u-x" }),
      Code.NotFound,
      missing,
    );
  });

  it("keeps organisations apart: another organisation's admin sees nothing and may not write", async () => {
    await expectRpcError(
      approvers(tokens.outsider).listApproverGroups({ organisation: ORG }),
      Code.PermissionDenied,
      "caller mallory has no role in organisation acme",
    );
    expect((await approvers(tokens.outsider).listApproverGroups({ organisation: "globex" })).groups).toEqual([]);
  });
});

describe("directory validation (INVALID_ARGUMENT before authorisation)", () => {
  const approvers = (tok = tokens.admin) => server.client(ApproverService, tok);
  const member = { organisation: ORG, group: "valid", userId: "u-1", scope: "organisation" };
  const grant = { organisation: ORG, userId: "u-1", role: "member", scope: "organisation" };

  beforeAll(async () => {
    await approvers().createApproverGroup({ organisation: ORG, name: "valid" });
  });

  const cases: [string, () => Promise<unknown>, string][] = [
    ["organisation missing", () => approvers().listApproverGroups({}), "organisation: is required"],
    [
      "group name with capitals",
      () => approvers().createApproverGroup({ organisation: ORG, name: "SRE" }),
      `name: "SRE" is not a valid group name: use 1-63 characters a-z, 0-9 or '-', starting with a letter or digit`,
    ],
    [
      "group name starting with '-'",
      () => approvers().createApproverGroup({ organisation: ORG, name: "-sre" }),
      `name: "-sre" is not a valid group name: use 1-63 characters a-z, 0-9 or '-', starting with a letter or digit`,
    ],
    [
      "group name of 64 characters",
      () => approvers().createApproverGroup({ organisation: ORG, name: "a".repeat(64) }),
      `name: "${"a".repeat(64)}" is not a valid group name: use 1-63 characters a-z, 0-9 or '-', starting with a letter or digit`,
    ],
    ["group name missing", () => approvers().deleteApproverGroup({ organisation: ORG }), "name: is required"],
    [
      "idp_group too long",
      () => approvers().createApproverGroup({ organisation: ORG, name: "idp", idpGroup: "x".repeat(201) }),
      "idp_group: must be at most 200 characters",
    ],
    ["member user_id missing", () => approvers().addGroupMember({ ...member, userId: "" }), "user_id: is required"],
    [
      "display_name too long",
      () => approvers().addGroupMember({ ...member, displayName: "d".repeat(201) }),
      "display_name: must be at most 200 characters",
    ],
    [
      "scope missing",
      () => approvers().addGroupMember({ ...member, scope: "" }),
      "scope: is required: one of organisation, project, environment",
    ],
    [
      "scope unknown",
      () => approvers().grantRole({ ...grant, scope: "team" }),
      `scope: "team" is not a scope: use one of organisation, project, environment`,
    ],
    [
      "organisation grant with a scope_id",
      () => approvers().grantRole({ ...grant, scopeId: "web" }),
      "scope_id: must be empty for an organisation-wide grant",
    ],
    [
      "organisation membership with a scope_id",
      () => approvers().addGroupMember({ ...member, scopeId: "web" }),
      "scope_id: must be empty for an organisation-wide membership",
    ],
    [
      "project grant without a scope_id",
      () => approvers().grantRole({ ...grant, scope: "project" }),
      "scope_id: is required for a project grant",
    ],
    [
      "environment grant without a scope_id",
      () => approvers().grantRole({ ...grant, scope: "environment" }),
      "scope_id: is required for an environment grant",
    ],
    [
      "environment grant without a project",
      () => approvers().grantRole({ ...grant, scope: "environment", scopeId: "prod" }),
      `scope_id: must be project/environment for an environment grant (environment: 1-63 characters a-z, 0-9, '.', '_' or '-'), got "prod"`,
    ],
    [
      "environment grant with an invalid environment",
      () => approvers().grantRole({ ...grant, scope: "environment", scopeId: "web/prod " }),
      `scope_id: must be project/environment for an environment grant (environment: 1-63 characters a-z, 0-9, '.', '_' or '-'), got "web/prod "`,
    ],
    [
      "project grant naming project/environment",
      () => approvers().grantRole({ ...grant, scope: "project", scopeId: "web/prod" }),
      "scope_id: must be a project name (no '/') for a project grant",
    ],
    [
      "role missing",
      () => approvers().grantRole({ ...grant, role: "" }),
      "role: is required: one of viewer, member, maintainer, admin",
    ],
    [
      "role outside the ladder",
      () => approvers().grantRole({ ...grant, role: "owner" }),
      `role: "owner" is not a role: use one of viewer, member, maintainer, admin`,
    ],
    [
      "role with other case",
      () => approvers().grantRole({ ...grant, role: "Admin" }),
      `role: "Admin" is not a role: use one of viewer, member, maintainer, admin`,
    ],
    [
      "expires_at not RFC 3339",
      () => approvers().grantRole({ ...grant, expiresAt: "tomorrow" }),
      "expires_at: must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z",
    ],
    [
      "expires_at now (not in the future)",
      () => approvers().grantRole({ ...grant, expiresAt: clock.now().toISOString() }),
      "expires_at: must be in the future",
    ],
    [
      "membership expires_at in the past",
      () => approvers().addGroupMember({ ...member, expiresAt: "2020-01-01T00:00:00Z" }),
      "expires_at: must be in the future",
    ],
    ["revoke id not a UUID", () => approvers().revokeRoleGrant({ organisation: ORG, id: "42" }), "id: must be a UUID"],
    ["revoke id missing", () => approvers().revokeRoleGrant({ organisation: ORG }), "id: is required"],
  ];

  it.each(cases)("%s", async (_name, call, message) => {
    await expectRpcError(call(), Code.InvalidArgument, message);
  });

  it("answers shape errors before permission: a member's invalid request is INVALID_ARGUMENT", async () => {
    await expectRpcError(
      approvers(tokens.member).grantRole({ ...grant, role: "owner" }),
      Code.InvalidArgument,
      /^role: "owner" is not a role/,
    );
  });

  it("answers NOT_FOUND for revoking a grant the organisation does not have", async () => {
    const id = "00000000-0000-4000-8000-000000000001";
    await expectRpcError(
      approvers().revokeRoleGrant({ organisation: ORG, id }),
      Code.NotFound,
      `role grant ${id} not found in organisation acme`,
    );
  });
});

describe("who may use the directory", () => {
  const approvers = (tok: string) => server.client(ApproverService, tok);

  it.each([["member"], ["viewer"], ["service"]] as const)("refuses writes from a %s", async (who) => {
    await expectRpcError(
      approvers(tokens[who]).createApproverGroup({ organisation: ORG, name: "nope" }),
      Code.PermissionDenied,
      /may not directory\.write in organisation acme$/,
    );
    await expectRpcError(
      approvers(tokens[who]).grantRole({ organisation: ORG, userId: "x", role: "admin", scope: "organisation" }),
      Code.PermissionDenied,
      /may not directory\.write in organisation acme$/,
    );
  });

  it.each([["member"], ["viewer"], ["service"]] as const)("lets a %s read groups and grants", async (who) => {
    await approvers(tokens[who]).listApproverGroups({ organisation: ORG });
    await approvers(tokens[who]).listRoleGrants({ organisation: ORG });
  });

  it("treats a role outside the ladder as no role at all", async () => {
    await expectRpcError(
      approvers(tokens.owner).listApproverGroups({ organisation: ORG }),
      Code.PermissionDenied,
      "caller otto has no role in organisation acme",
    );
  });

  it("does not let a project admin grant manage the directory (organisation-wide admin only)", async () => {
    await approvers(tokens.admin).grantRole({
      organisation: ORG,
      userId: "pat",
      role: "admin",
      scope: "project",
      scopeId: "web",
    });
    const pat = await token({ sub: "pat", orgs: { acme: "member" } });
    await expectRpcError(
      approvers(pat).createApproverGroup({ organisation: ORG, name: "pats" }),
      Code.PermissionDenied,
      "member pat may not directory.write in organisation acme",
    );
    // …while the same grant lets pat manage policies of that project.
    await server.client(PolicyService, pat).createPolicy({
      project: { organisation: ORG, project: "web" },
      name: "pat-soak",
      policyType: PolicyType.SOAK_TIME,
      config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60n } },
    });
  });
});
