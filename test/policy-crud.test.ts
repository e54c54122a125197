import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const soak = (durationSeconds = 60n) =>
  ({ case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds } }) as const;
const branch = (branchPattern = "^main$") =>
  ({ case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern } }) as const;
const approval = (requiredApprovals = 2) =>
  ({ case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals } }) as const;

const clock = new ManualClock(Date.parse("2026-02-03T04:05:06Z"));
let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(() => server?.stop());

describe.each(PROTOCOLS)("policy CRUD over %s", (protocol) => {
  const project = { organisation: "acme", project: `crud-${protocol}` };
  const client = () => server.client(PolicyService, admin, protocol);

  it("creates a soak policy, enabled, with id and RFC 3339 timestamps", async () => {
    clock.set(new Date("2026-02-03T04:05:06Z"));
    const { policy } = await client().createPolicy({
      project,
      name: "soak-staging",
      policyType: PolicyType.SOAK_TIME,
      config: soak(1800n),
    });
    expect(policy?.id).toMatch(UUID);
    expect(policy).toMatchObject({
      name: "soak-staging",
      enabled: true,
      policyType: PolicyType.SOAK_TIME,
      config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 1800n } },
      createdAt: "2026-02-03T04:05:06.000Z",
      updatedAt: "2026-02-03T04:05:06.000Z",
    });
  });

  it("creates branch and approval policies", async () => {
    const b = await client().createPolicy({
      project,
      name: "main-only",
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: branch(),
    });
    expect(b.policy).toMatchObject({ policyType: PolicyType.BRANCH_RESTRICTION, config: branch() });
    const a = await client().createPolicy({
      project,
      name: "two-approvals",
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: approval(2),
    });
    expect(a.policy).toMatchObject({ policyType: PolicyType.EXTERNAL_APPROVAL, config: approval(2) });
  });

  it("lists the project's policies ordered by name", async () => {
    await client().createPolicy({ project, name: "aaa-first", policyType: PolicyType.BRANCH_RESTRICTION, config: branch("x") });
    const { policies } = await client().listPolicies({ project });
    expect(policies.map((p) => p.name)).toEqual(["aaa-first", "main-only", "soak-staging", "two-approvals"]);
  });

  it("keeps projects apart", async () => {
    const { policies } = await client().listPolicies({ project: { organisation: "acme", project: "elsewhere" } });
    expect(policies).toEqual([]);
  });

  it("rejects a duplicate name with ALREADY_EXISTS naming it", async () => {
    await expectRpcError(
      client().createPolicy({ project, name: "soak-staging", policyType: PolicyType.SOAK_TIME, config: soak() }),
      Code.AlreadyExists,
      `name: policy soak-staging already exists in acme/${project.project}`,
    );
  });

  it("allows the same name in another project", async () => {
    const { policy } = await client().createPolicy({
      project: { ...project, project: `${project.project}-twin` },
      name: "soak-staging",
      policyType: PolicyType.SOAK_TIME,
      config: soak(),
    });
    expect(policy?.name).toBe("soak-staging");
  });

  it("toggles enabled without touching the config, bumping updated_at", async () => {
    clock.advance(60);
    const { policy } = await client().updatePolicy({ project, name: "soak-staging", enabled: false });
    expect(policy).toMatchObject({
      enabled: false,
      policyType: PolicyType.SOAK_TIME,
      config: soak(1800n),
      createdAt: "2026-02-03T04:05:06.000Z",
      updatedAt: "2026-02-03T04:06:06.000Z",
    });
    const again = await client().updatePolicy({ project, name: "soak-staging", enabled: true });
    expect(again.policy?.enabled).toBe(true);
  });

  it("replaces the config, and the type follows it", async () => {
    const before = (await client().listPolicies({ project })).policies.find((p) => p.name === "soak-staging");
    const { policy } = await client().updatePolicy({ project, name: "soak-staging", config: branch("^release/") });
    expect(policy).toMatchObject({
      id: before?.id,
      enabled: true,
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: branch("^release/"),
    });
    const listed = (await client().listPolicies({ project })).policies.find((p) => p.name === "soak-staging");
    expect(listed).toMatchObject({ policyType: PolicyType.BRANCH_RESTRICTION, config: branch("^release/") });
  });

  it("changes enabled and config in one update", async () => {
    const { policy } = await client().updatePolicy({
      project,
      name: "two-approvals",
      enabled: false,
      config: approval(3),
    });
    expect(policy).toMatchObject({ enabled: false, policyType: PolicyType.EXTERNAL_APPROVAL, config: approval(3) });
  });

  it("deletes a policy; a second delete answers NOT_FOUND", async () => {
    await client().deletePolicy({ project, name: "aaa-first" });
    const { policies } = await client().listPolicies({ project });
    expect(policies.map((p) => p.name)).toEqual(["main-only", "soak-staging", "two-approvals"]);
    await expectRpcError(
      client().deletePolicy({ project, name: "aaa-first" }),
      Code.NotFound,
      `policy aaa-first not found in acme/${project.project}`,
    );
  });

  it("lets a deleted name be created again", async () => {
    const { policy } = await client().createPolicy({
      project,
      name: "aaa-first",
      policyType: PolicyType.SOAK_TIME,
      config: soak(5n),
    });
    expect(policy?.config).toEqual(expect.objectContaining({ case: "soakTime" }));
  });
});
