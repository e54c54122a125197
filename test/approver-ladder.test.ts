import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApproverService } from "../src/gen/releasegate/v1/approver_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

// The role ladder (viewer < member < maintainer < admin) and role grants
// over the wire: every RPC's permission reads the effective role for the
// request's organisation, project and environment, and a grant stops
// counting at its expires_at on the server's clock.

const clock = new ManualClock(Date.parse("2026-04-05T06:07:08Z"));
const ORG = "acme";
const web = { organisation: ORG, project: "web" };
const api = { organisation: ORG, project: "api" };
let server: TestServer;
let admin: string;
let pipeline: string;

const soak = (targetEnvironment = "prod") =>
  ({ case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment, durationSeconds: 60n } }) as const;

beforeAll(async () => {
  server = await startTestServer({ clock });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  pipeline = await token({ sub: "ci-bot", orgs: { acme: "member" }, service: true });
  await server.client(PolicyService, admin).createPolicy({
    project: web,
    name: "two-approvals",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 2 } },
  });
});
afterAll(() => server?.stop());

const directory = () => server.client(ApproverService, admin);
const policies = (tok: string) => server.client(PolicyService, tok);
const releases = (tok: string) => server.client(ReleaseService, tok);
let seq = 0;
const policyName = () => `p-${++seq}`;

async function intentIn(project: typeof web): Promise<string> {
  const id = randomUUID();
  await releases(pipeline).registerReleaseIntent({ project, releaseIntentId: id, authorUserId: "someone", branch: "main" });
  return id;
}

async function grant(userId: string, role: string, scope: string, scopeId = "", expiresAt = ""): Promise<string> {
  const res = await directory().grantRole({ organisation: ORG, userId, role, scope, scopeId, expiresAt });
  return res.grant?.id ?? "";
}

describe("the ladder from the token's role", () => {
  it("lets a viewer read, evaluate and watch but not vote or register intents", async () => {
    const viewer = await token({ sub: "vera", orgs: { acme: "viewer" } });
    const id = await intentIn(web);
    await policies(viewer).listPolicies({ project: web });
    await policies(viewer).evaluatePolicies({ project: web, targetEnvironment: "prod", releaseIntentId: id });
    await policies(viewer).getExternalApprovalState({ project: web, releaseIntentId: id, targetEnvironment: "prod" });
    await server.client(ApprovalAuditService, viewer).listApprovalHistory({ project: web });
    await releases(viewer).getReleaseIntent({ project: web, releaseIntentId: id });
    await expectRpcError(
      policies(viewer).externalApproveRelease({ project: web, releaseIntentId: id, targetEnvironment: "prod" }),
      Code.PermissionDenied,
      "viewer vera may not approval.vote in organisation acme",
    );
    await expectRpcError(
      policies(viewer).externalRejectRelease({ project: web, releaseIntentId: id, targetEnvironment: "prod" }),
      Code.PermissionDenied,
      /^viewer vera may not approval\.vote/,
    );
    await expectRpcError(
      releases(viewer).registerReleaseIntent({ project: web, branch: "main" }),
      Code.PermissionDenied,
      "viewer vera may not intent.register in organisation acme",
    );
  });

  it("lets a maintainer record deployments, which a member may not, and nothing admin-only", async () => {
    const maintainer = await token({ sub: "max", orgs: { acme: "maintainer" } });
    const member = await token({ sub: "mia", orgs: { acme: "member" } });
    const id = await intentIn(web);
    const deploy = { project: web, environment: "staging", releaseIntentId: id, status: DeploymentStatus.SUCCEEDED };
    const recorded = await releases(maintainer).recordDeployment(deploy);
    expect(recorded.deployment?.environment).toBe("staging");
    await expectRpcError(
      releases(member).recordDeployment(deploy),
      Code.PermissionDenied,
      "member mia may not deployment.record in organisation acme",
    );
    await expectRpcError(
      policies(maintainer).createPolicy({ project: web, name: policyName(), policyType: PolicyType.SOAK_TIME, config: soak() }),
      Code.PermissionDenied,
      "maintainer max may not policy.write in organisation acme",
    );
    // A maintainer is a member too: it may vote.
    const state = await policies(maintainer).externalApproveRelease({
      project: web,
      releaseIntentId: id,
      targetEnvironment: "prod",
    });
    expect(state.state?.decisions).toMatchObject([{ userId: "max", decision: "approved" }]);
  });

  it.each([["owner"], ["Admin"], ["superuser"], [""]])(
    "treats the role string %j as no role: PERMISSION_DENIED on every RPC, never a crash",
    async (role) => {
      const odd = await token({ sub: "otto", orgs: { acme: role as never } });
      await expectRpcError(policies(odd).listPolicies({ project: web }), Code.PermissionDenied, /^caller otto has no role/);
      await expectRpcError(
        releases(odd).registerReleaseIntent({ project: web }),
        Code.PermissionDenied,
        "caller otto has no role in organisation acme",
      );
    },
  );
});

describe("role grants", () => {
  it("raises a member to admin for one project only: a policy there, not in another project", async () => {
    const bob = await token({ sub: "bob", orgs: { acme: "member" } });
    await grant("bob", "admin", "project", "web");
    const name = policyName();
    const created = await policies(bob).createPolicy({
      project: web,
      name,
      policyType: PolicyType.SOAK_TIME,
      config: soak(),
    });
    expect(created.policy?.name).toBe(name);
    await expectRpcError(
      policies(bob).createPolicy({ project: api, name: policyName(), policyType: PolicyType.SOAK_TIME, config: soak() }),
      Code.PermissionDenied,
      "member bob may not policy.write in organisation acme",
    );
  });

  it("scopes an environment grant to that project and environment only (names folded)", async () => {
    const carl = await token({ sub: "carl", orgs: { acme: "member" } });
    await grant("carl", "maintainer", "environment", "web/STAGING");
    const id = await intentIn(web);
    await releases(carl).recordDeployment({
      project: web,
      environment: "Staging",
      releaseIntentId: id,
      status: DeploymentStatus.SUCCEEDED,
    });
    await expectRpcError(
      releases(carl).recordDeployment({ project: web, environment: "prod", releaseIntentId: id, status: DeploymentStatus.SUCCEEDED }),
      Code.PermissionDenied,
      "member carl may not deployment.record in organisation acme",
    );
    const apiIntent = await intentIn(api);
    await expectRpcError(
      releases(carl).recordDeployment({
        project: api,
        environment: "staging",
        releaseIntentId: apiIntent,
        status: DeploymentStatus.SUCCEEDED,
      }),
      Code.PermissionDenied,
      /^member carl may not deployment\.record/,
    );
  });

  it("gives a user without a token role in the organisation the granted role (and only there)", async () => {
    const nora = await token({ sub: "nora", orgs: {} });
    await grant("nora", "viewer", "project", "web");
    await policies(nora).listPolicies({ project: web });
    await expectRpcError(
      policies(nora).listPolicies({ project: api }),
      Code.PermissionDenied,
      "caller nora has no role in organisation acme",
    );
  });

  it("ignores a grant of another organisation", async () => {
    const gus = await token({ sub: "gus", orgs: { acme: "member", globex: "admin" } });
    await server
      .client(ApproverService, await token({ sub: "gadmin", orgs: { globex: "admin" } }))
      .grantRole({ organisation: "globex", userId: "gus", role: "admin", scope: "organisation" });
    await expectRpcError(
      policies(gus).createPolicy({ project: web, name: policyName(), policyType: PolicyType.SOAK_TIME, config: soak() }),
      Code.PermissionDenied,
      "member gus may not policy.write in organisation acme",
    );
  });

  it("stops counting an expiring grant at its expires_at on the server's clock", async () => {
    const eve = await token({ sub: "eve", orgs: { acme: "member" } });
    const start = clock.now();
    const expiresAt = new Date(start.getTime() + 3600_000);
    const id = await grant("eve", "admin", "organisation", "", expiresAt.toISOString());
    const create = () =>
      policies(eve).createPolicy({ project: web, name: policyName(), policyType: PolicyType.SOAK_TIME, config: soak() });
    clock.set(new Date(expiresAt.getTime() - 1));
    await create();
    clock.set(expiresAt);
    await expectRpcError(create(), Code.PermissionDenied, "member eve may not policy.write in organisation acme");
    const listed = await directory().listRoleGrants({ organisation: ORG, userId: "eve" });
    expect(listed.grants).toMatchObject([{ id, role: "admin", expiresAt: expiresAt.toISOString(), active: false }]);
    clock.set(start);
  });

  it("stops counting a revoked grant at once", async () => {
    const rita = await token({ sub: "rita", orgs: { acme: "viewer" } });
    const id = await grant("rita", "member", "project", "web");
    await releases(rita).registerReleaseIntent({ project: web, branch: "main" });
    await directory().revokeRoleGrant({ organisation: ORG, id });
    await expectRpcError(
      releases(rita).registerReleaseIntent({ project: web, branch: "main" }),
      Code.PermissionDenied,
      "viewer rita may not intent.register in organisation acme",
    );
    expect((await directory().listRoleGrants({ organisation: ORG, userId: "rita" })).grants).toEqual([]);
  });

  it("lets a project admin grant force_bypass there: the vote is an admin_override", async () => {
    const alice = await token({ sub: "alice", orgs: { acme: "member" } });
    await grant("alice", "admin", "project", "web");
    const id = randomUUID();
    await releases(pipeline).registerReleaseIntent({ project: web, releaseIntentId: id, authorUserId: "alice" });
    const res = await policies(alice).externalApproveRelease({
      project: web,
      releaseIntentId: id,
      targetEnvironment: "prod",
      forceBypass: true,
    });
    expect(res.state?.decisions).toMatchObject([{ userId: "alice", decisionKind: "admin_override" }]);
  });

  it("lists grants oldest first, filtered by user, with who granted them", async () => {
    const id = await grant("lister", "maintainer", "environment", "web/prod");
    const listed = await server.client(ApproverService, pipeline).listRoleGrants({ organisation: ORG, userId: "lister" });
    expect(listed.grants).toEqual([
      expect.objectContaining({
        id,
        organisation: ORG,
        userId: "lister",
        role: "maintainer",
        scope: "environment",
        scopeId: "web/prod",
        expiresAt: "",
        active: true,
        grantedAt: clock.now().toISOString(),
        grantedBy: "ada",
      }),
    ]);
    const all = await directory().listRoleGrants({ organisation: ORG });
    expect(all.grants.map((g) => g.userId)).toContain("lister");
    expect(all.grants.length).toBeGreaterThan(1);
  });
});
