import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApproverService } from "../src/gen/releasegate/v1/approver_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { WebhookFormat, WebhookService } from "../src/gen/releasegate/v1/webhook_pb.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { ALL_METHODS, callMethod, codeName, methodPath } from "./support/rpc-catalog.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Authorisation, per RPC: a table of who may call what, written from the
// product rules (not from src/auth/permissions.ts), checked against every
// method of every service for admin, member, service account and a user of
// another organisation. Then the four-eyes rules of approval votes.

type Role = "admin" | "member" | "service" | "outsider";
const ROLES: readonly Role[] = ["admin", "member", "service", "outsider"];
const project = { organisation: "acme", project: "authz" };
const counters = new SuiteCounters("security-authz");
/** A bypass needs a written reason (at least 10 characters). */
const BYPASS_REASON = "incident 42: the hotfix cannot wait";

const EVERYONE_IN_ORG: readonly Role[] = ["admin", "member", "service"];
/** Who may call each method; anyone else gets PERMISSION_DENIED. */
const ALLOWED: Record<string, readonly Role[]> = {
  "forest.v1.PolicyService/CreatePolicy": ["admin"],
  "forest.v1.PolicyService/UpdatePolicy": ["admin"],
  "forest.v1.PolicyService/DeletePolicy": ["admin"],
  "forest.v1.PolicyService/ListPolicies": EVERYONE_IN_ORG,
  "forest.v1.PolicyService/EvaluatePolicies": EVERYONE_IN_ORG,
  // People vote; service accounts (pipelines) never do.
  "forest.v1.PolicyService/ExternalApproveRelease": ["admin", "member"],
  "forest.v1.PolicyService/ApproveRelease": ["admin", "member"],
  "forest.v1.PolicyService/ExternalRejectRelease": ["admin", "member"],
  "forest.v1.PolicyService/RejectRelease": ["admin", "member"],
  "forest.v1.PolicyService/GetExternalApprovalState": EVERYONE_IN_ORG,
  "forest.v1.PolicyService/GetApprovalState": EVERYONE_IN_ORG,
  "releasegate.v1.ReleaseService/RegisterReleaseIntent": EVERYONE_IN_ORG,
  "releasegate.v1.ReleaseService/GetReleaseIntent": EVERYONE_IN_ORG,
  // Pipelines and admins report deployments; a member could fake a soak.
  "releasegate.v1.ReleaseService/RecordDeployment": ["admin", "service"],
  "releasegate.v1.ApprovalAuditService/ListApprovalHistory": EVERYONE_IN_ORG,
  "releasegate.v1.ApprovalAuditService/WatchApprovalEvents": EVERYONE_IN_ORG,
  // The approver directory: admins write, everyone in the organisation reads.
  "releasegate.v1.ApproverService/CreateApproverGroup": ["admin"],
  "releasegate.v1.ApproverService/DeleteApproverGroup": ["admin"],
  "releasegate.v1.ApproverService/ListApproverGroups": EVERYONE_IN_ORG,
  "releasegate.v1.ApproverService/AddGroupMember": ["admin"],
  "releasegate.v1.ApproverService/RemoveGroupMember": ["admin"],
  "releasegate.v1.ApproverService/GrantRole": ["admin"],
  "releasegate.v1.ApproverService/RevokeRoleGrant": ["admin"],
  "releasegate.v1.ApproverService/ListRoleGrants": EVERYONE_IN_ORG,
  // Opening an approval gate is an admin's (a person's) call.
  "releasegate.v1.BreakGlassService/BreakGlass": ["admin"],
  // Declaring a project's environments is an admin's (a person's) decision.
  "releasegate.v1.EnvironmentService/SetProjectEnvironments": ["admin"],
  "releasegate.v1.EnvironmentService/GetProjectEnvironments": EVERYONE_IN_ORG,
  // Who may still approve: a read.
  "releasegate.v1.ApprovalQueryService/ListEligibleApprovers": EVERYONE_IN_ORG,
  // Subscriptions say where events go and carry secrets: admins only, reads too.
  "releasegate.v1.WebhookService/CreateWebhook": ["admin"],
  "releasegate.v1.WebhookService/ListWebhooks": ["admin"],
  "releasegate.v1.WebhookService/UpdateWebhook": ["admin"],
  "releasegate.v1.WebhookService/DeleteWebhook": ["admin"],
  "releasegate.v1.WebhookService/ListWebhookDeliveries": ["admin"],
  "releasegate.v1.WebhookService/RedeliverWebhookDelivery": ["admin"],
};

let server: TestServer;
const tokens = {} as Record<Role | "author" | "adminAuthor", string>;
let intentId: string;
let seq = 0;

beforeAll(async () => {
  server = await startTestServer();
  tokens.admin = await token({ sub: "ada", name: "Ada", orgs: { acme: "admin" } });
  tokens.member = await token({ sub: "bob", name: "Bob", orgs: { acme: "member" } });
  tokens.service = await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true });
  tokens.outsider = await token({ sub: "mallory", orgs: { globex: "admin" } });
  tokens.author = await token({ sub: "alice", name: "Alice", orgs: { acme: "member" } });
  tokens.adminAuthor = await token({ sub: "root", name: "Root", orgs: { acme: "admin" } });
  await adminPolicies().createPolicy({
    project,
    name: "gate",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 2 } },
  });
  intentId = await registerIntent("someone-else");
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

const adminPolicies = () => server.client(PolicyService, tokens.admin);
const approvers = () => server.client(ApproverService, tokens.admin);
// A kind no event of this suite has, so its votes make no deliveries.
const webhook = {
  organisation: "acme",
  url: "https://hooks.example.com/authz",
  eventKinds: ["approval.expired"],
  format: WebhookFormat.JSON,
  secret: "authz-secret-0123456789",
};
const createWebhook = async () => (await server.client(WebhookService, tokens.admin).createWebhook(webhook)).webhook?.id ?? "";

/** Registered by the pipeline, so the only four-eyes party among the voters is the author. */
async function registerIntent(author: string): Promise<string> {
  const id = randomUUID();
  await server
    .client(ReleaseService, tokens.service)
    .registerReleaseIntent({ project, releaseIntentId: id, authorUserId: author, branch: "main", version: "1" });
  return id;
}

async function soakPolicy(name: string): Promise<void> {
  await adminPolicies().createPolicy({
    project,
    name,
    policyType: PolicyType.SOAK_TIME,
    config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "qa", durationSeconds: 60n } },
  });
}

/** A request that succeeds for an allowed caller (fixtures created as admin first). */
async function requestFor(method: DescMethod): Promise<Record<string, unknown>> {
  const name = `p-${++seq}`;
  const vote = { project, releaseIntentId: intentId, targetEnvironment: "prod" };
  switch (methodPath(method)) {
    case "forest.v1.PolicyService/CreatePolicy":
      return {
        project,
        name,
        policyType: PolicyType.SOAK_TIME,
        config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "qa", durationSeconds: 60n } },
      };
    case "forest.v1.PolicyService/UpdatePolicy":
      await soakPolicy(name);
      return { project, name, enabled: false };
    case "forest.v1.PolicyService/DeletePolicy":
      await soakPolicy(name);
      return { project, name };
    // A fresh intent per vote: two approvals on one intent approve its request (final), and a vote on a
    // final request is FAILED_PRECONDITION, which would hide what this row checks (who may vote).
    case "forest.v1.PolicyService/ExternalApproveRelease":
    case "forest.v1.PolicyService/ApproveRelease":
    case "forest.v1.PolicyService/ExternalRejectRelease":
    case "forest.v1.PolicyService/RejectRelease":
      return { ...vote, releaseIntentId: await registerIntent("someone-else") };
    case "forest.v1.PolicyService/EvaluatePolicies":
      return { project, targetEnvironment: "prod", releaseIntentId: intentId };
    case "releasegate.v1.ReleaseService/RegisterReleaseIntent":
      return { project, branch: "main", version: "2" };
    case "releasegate.v1.ReleaseService/GetReleaseIntent":
      return { project, releaseIntentId: intentId };
    case "releasegate.v1.BreakGlassService/BreakGlass":
      return { ...vote, reason: BYPASS_REASON };
    case "releasegate.v1.ReleaseService/RecordDeployment":
      return { project, environment: "staging", releaseIntentId: intentId, status: DeploymentStatus.SUCCEEDED };
    case "releasegate.v1.ApproverService/CreateApproverGroup":
      return { organisation: "acme", name };
    case "releasegate.v1.ApproverService/DeleteApproverGroup":
      await approvers().createApproverGroup({ organisation: "acme", name });
      return { organisation: "acme", name };
    case "releasegate.v1.ApproverService/AddGroupMember":
      await approvers().createApproverGroup({ organisation: "acme", name });
      return { organisation: "acme", group: name, userId: "carol", scope: "organisation" };
    case "releasegate.v1.ApproverService/RemoveGroupMember":
      await approvers().createApproverGroup({ organisation: "acme", name });
      await approvers().addGroupMember({ organisation: "acme", group: name, userId: "carol", scope: "organisation" });
      return { organisation: "acme", group: name, userId: "carol" };
    case "releasegate.v1.ApproverService/GrantRole":
      return { organisation: "acme", userId: "carol", role: "viewer", scope: "project", scopeId: "authz" };
    case "releasegate.v1.ApproverService/RevokeRoleGrant": {
      const { grant } = await approvers().grantRole({
        organisation: "acme",
        userId: "carol",
        role: "viewer",
        scope: "organisation",
      });
      return { organisation: "acme", id: grant?.id ?? "" };
    }
    case "releasegate.v1.ApproverService/ListApproverGroups":
    case "releasegate.v1.ApproverService/ListRoleGrants":
      return { organisation: "acme" };
    // A project of their own: a declaration must not gate the other rows' requests.
    case "releasegate.v1.EnvironmentService/SetProjectEnvironments":
      return { project: { ...project, project: "authz-envs" }, environments: ["dev", "prod"] };
    case "releasegate.v1.EnvironmentService/GetProjectEnvironments":
      return { project: { ...project, project: "authz-envs" } };
    case "releasegate.v1.WebhookService/CreateWebhook":
      return webhook;
    case "releasegate.v1.WebhookService/ListWebhooks":
      return { organisation: "acme" };
    case "releasegate.v1.WebhookService/UpdateWebhook":
      return { organisation: "acme", id: await createWebhook(), enabled: false };
    case "releasegate.v1.WebhookService/DeleteWebhook":
      return { organisation: "acme", id: await createWebhook() };
    case "releasegate.v1.WebhookService/ListWebhookDeliveries":
      return { organisation: "acme", subscriptionId: await createWebhook() };
    case "releasegate.v1.WebhookService/RedeliverWebhookDelivery": {
      // A dead delivery to send again, as the worker leaves one after its last attempt.
      const subscriptionId = await createWebhook();
      const dead = await server.app.database.db
        .insertInto("webhook_deliveries")
        .values({
          subscription_id: subscriptionId,
          event_id: randomUUID(),
          kind: "approval.expired",
          release_intent_id: intentId,
          environment: "prod",
          payload: JSON.stringify({ kind: "approval.expired" }),
          status: "dead",
          attempts: 15,
          next_attempt_at: new Date(),
          created_at: new Date(),
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      await server.client(WebhookService, tokens.admin).updateWebhook({ organisation: "acme", id: subscriptionId, enabled: false });
      return { organisation: "acme", subscriptionId, deliveryId: String(dead.id) };
    }
    default:
      return method.input.fields.some((f) => f.localName === "releaseIntentId") ? vote : { project };
  }
}

describe("the role matrix", () => {
  it("covers every method of every service", () => {
    expect(ALL_METHODS.map(methodPath).sort()).toEqual(Object.keys(ALLOWED).sort());
  });

  for (const method of ALL_METHODS) {
    for (const role of ROLES) {
      const allowed = ALLOWED[methodPath(method)]?.includes(role) ?? false;
      it(`${methodPath(method)} as ${role}: ${allowed ? "allowed" : "PERMISSION_DENIED"}`, async () => {
        const outcome = await callMethod(server.grpc(tokens[role]), method, await requestFor(method));
        if (allowed) expect(outcome, `${codeName(outcome.code)} ${outcome.message}`).toMatchObject({ code: "ok" });
        else {
          expect(codeName(outcome.code), outcome.message).toBe("PermissionDenied");
          expect(outcome.message).toMatch(role === "outsider" ? /has no role in organisation acme/ : /may not .* in organisation acme/);
        }
        counters.add("role × RPC cells (admin, member, service account, other organisation)", 1, "allowed exactly per the rule table");
      });
    }
  }
});

describe("four-eyes rules on votes", () => {
  const vote = (id: string, extra: Record<string, unknown> = {}) => ({
    project,
    releaseIntentId: id,
    targetEnvironment: "prod",
    ...extra,
  });
  const approve = (tok: string, id: string, extra?: Record<string, unknown>) =>
    callMethod(server.grpc(tok), PolicyService.method.externalApproveRelease, vote(id, extra));
  const record = (_outcome: string) =>
    counters.add(
      "four-eyes cases (self-approval, bypass by non-admin/service, admin override, other project/org)",
      1,
      "each answered as the rule says (PERMISSION_DENIED, NOT_FOUND, admin_override, peer)",
    );

  it("rejects self-approval by a member author", async () => {
    const id = await registerIntent("alice");
    const outcome = await approve(tokens.author, id);
    expect(codeName(outcome.code)).toBe("PermissionDenied");
    expect(outcome.message).toMatch(/^alice is the author of release intent [0-9a-f-]{36} and cannot approve it/);
    record("PERMISSION_DENIED");
  });

  it("rejects force_bypass from a member author", async () => {
    const id = await registerIntent("alice");
    const outcome = await approve(tokens.author, id, { forceBypass: true, comment: BYPASS_REASON });
    expect(codeName(outcome.code)).toBe("PermissionDenied");
    expect(outcome.message).toMatch(/force_bypass: only an organisation admin/);
    record("PERMISSION_DENIED");
  });

  it("rejects force_bypass from a member who is not the author", async () => {
    const outcome = await approve(tokens.member, await registerIntent("alice"), { forceBypass: true, comment: BYPASS_REASON });
    expect(codeName(outcome.code)).toBe("PermissionDenied");
    expect(outcome.message).toMatch(/force_bypass: only an organisation admin/);
    record("PERMISSION_DENIED");
  });

  it("rejects force_bypass from a service account", async () => {
    const outcome = await approve(tokens.service, await registerIntent("alice"), { forceBypass: true, comment: BYPASS_REASON });
    expect(codeName(outcome.code)).toBe("PermissionDenied");
    record("PERMISSION_DENIED");
  });

  it("lets a service account with the admin role manage policies (the role decides) but still not vote", async () => {
    const adminBot = await token({ sub: "policy-bot", orgs: { acme: "admin" }, service: true });
    const name = `bot-${++seq}`;
    const created = await server.client(PolicyService, adminBot).createPolicy({
      project,
      name,
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: { case: "branchRestriction", value: { targetEnvironment: "qa", branchPattern: "^main$" } },
    });
    expect(created.policy?.name).toBe(name);
    await server.client(PolicyService, adminBot).deletePolicy({ project, name });
    const outcome = await approve(adminBot, await registerIntent("alice"));
    expect(codeName(outcome.code)).toBe("PermissionDenied");
    expect(outcome.message).toMatch(/service account policy-bot may not approval\.vote/);
    record("PERMISSION_DENIED");
  });

  it("rejects self-approval by an admin author without force_bypass", async () => {
    const id = await registerIntent("root");
    const outcome = await approve(tokens.adminAuthor, id);
    expect(codeName(outcome.code)).toBe("PermissionDenied");
    expect(outcome.message).toMatch(/root is the author/);
    record("PERMISSION_DENIED");
  });

  it("records an admin author's force_bypass approval as admin_override, in state and history", async () => {
    const id = await registerIntent("root");
    const res = await server.client(PolicyService, tokens.adminAuthor).externalApproveRelease(vote(id, { forceBypass: true, comment: BYPASS_REASON }));
    expect(res.state?.decisions).toMatchObject([{ userId: "root", decision: "approved", decisionKind: "admin_override" }]);
    const history = await server
      .client(ApprovalAuditService, tokens.member)
      .listApprovalHistory({ project, releaseIntentId: id });
    // The vote opened the approval request; one approval of the two required leaves it pending.
    expect(history.entries).toMatchObject([
      { userId: "root", decision: "pending", decisionKind: "request_pending" },
      { userId: "root", decision: "approved", decisionKind: "admin_override", comment: BYPASS_REASON },
    ]);
    record("admin_override recorded");
  });

  it("treats force_bypass from an admin who is not the author as a peer vote", async () => {
    const id = await registerIntent("alice");
    const res = await server.client(PolicyService, tokens.admin).externalApproveRelease(vote(id, { forceBypass: true, comment: BYPASS_REASON }));
    expect(res.state?.decisions).toMatchObject([{ userId: "ada", decisionKind: "peer" }]);
    record("peer");
  });

  it("lets an author reject their own release (a rejection is a vote, not an approval)", async () => {
    const id = await registerIntent("alice");
    const res = await server.client(PolicyService, tokens.author).externalRejectRelease(vote(id));
    expect(res.state).toMatchObject({ currentApprovals: 0, decisions: [{ userId: "alice", decision: "rejected" }] });
    record("peer rejection");
  });

  it("answers NOT_FOUND for a vote naming an intent of another project", async () => {
    const id = await registerIntent("alice");
    const other = { organisation: "acme", project: "elsewhere" };
    const outcome = await callMethod(server.grpc(tokens.member), PolicyService.method.approveRelease, {
      project: other,
      releaseIntentId: id,
      targetEnvironment: "prod",
    });
    expect(codeName(outcome.code)).toBe("NotFound");
    expect(outcome.message).toContain(id);
    record("NOT_FOUND");
  });

  it("denies a user of another organisation even with admin there", async () => {
    const outcome = await approve(tokens.outsider, intentId, { forceBypass: true, comment: BYPASS_REASON });
    expect(outcome.code).toBe(Code.PermissionDenied);
    expect(outcome.message).toMatch(/has no role in organisation acme/);
    record("PERMISSION_DENIED");
  });
});
