import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { expectCode } from "./support/approval-fixtures.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// SQL-injection and quoting probes in every free-text field: stored and
// returned byte for byte, and the tables are still there afterwards.

const PROBES: readonly string[] = [
  "'; DROP TABLE policies; --",
  "\" OR 1=1 --",
  "' OR '1'='1' /*",
  "$$; DELETE FROM approval_votes; $$",
  "$1 $2 $$ $tag$ x $tag$",
  "\\",
  "C:\\path\\to\\'file'\\",
  "100% _like_ %",
  "Robert'); DROP TABLE release_intents;--",
  "Ünïcödé ☃ 🚀 漢字 עברית",
  "e\u0301 (combining) \u200b (zero width)",
];

const counters = new SuiteCounters("security-injection");
let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

const record = (what: string) => counters.add(`injection probes: ${what}`, 1, "stored and returned verbatim; tables intact");

async function tablesIntact(): Promise<void> {
  const project = { organisation: "acme", project: "control" };
  const policies = server.client(PolicyService, admin);
  await policies.createPolicy({
    project,
    name: `control-${randomUUID().slice(0, 8)}`,
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
  });
  expect((await policies.listPolicies({ project })).policies.length).toBeGreaterThan(0);
}

describe("release intent text fields", () => {
  it.each(PROBES)("stores branch, version and author fields verbatim: %s", async (probe) => {
    const project = { organisation: "acme", project: "intents" };
    const releases = server.client(ReleaseService, admin);
    const id = randomUUID();
    const text = { authorUserId: probe, authorUsername: probe, branch: probe, version: probe };
    const registered = await releases.registerReleaseIntent({ project, releaseIntentId: id, ...text });
    expect(registered.releaseIntent).toMatchObject(text);
    const read = await releases.getReleaseIntent({ project, releaseIntentId: id });
    expect(read.releaseIntent).toMatchObject(text);
    // Idempotent re-registration compares the stored text exactly.
    const again = await releases.registerReleaseIntent({ project, releaseIntentId: id, ...text });
    expect(again.created).toBe(false);
    await tablesIntact();
    record("intent branch, version and author fields");
  });
});

describe("environment names, organisations and projects", () => {
  // Environment names are identifiers since issue 11 (^[a-z0-9][a-z0-9._-]{0,62}$
  // after folding ASCII case): every probe is refused before anything reaches SQL.
  it.each(PROBES)("refuses %s as an environment name in policies, deployments and evaluation", async (probe) => {
    const project = { organisation: "acme", project: `env-${randomUUID().slice(0, 8)}` };
    const policies = server.client(PolicyService, admin);
    const notAName = /^(soak_time\.source_environment|environment|target_environment): ".*" is not a valid environment name: /;
    await expectCode(
      policies.createPolicy({
        project,
        name: "soak",
        policyType: PolicyType.SOAK_TIME,
        config: { case: "soakTime", value: { sourceEnvironment: probe, targetEnvironment: "prod", durationSeconds: 1n } },
      }),
      Code.InvalidArgument,
      notAName,
    );
    const id = randomUUID();
    await server.client(ReleaseService, admin).registerReleaseIntent({ project, releaseIntentId: id, branch: probe });
    await expectCode(
      server.client(ReleaseService, admin).recordDeployment({
        project,
        environment: probe,
        releaseIntentId: id,
        status: DeploymentStatus.SUCCEEDED,
      }),
      Code.InvalidArgument,
      notAName,
    );
    await expectCode(
      policies.evaluatePolicies({ project, targetEnvironment: probe, releaseIntentId: id }),
      Code.InvalidArgument,
      notAName,
    );
    expect((await policies.listPolicies({ project })).policies).toEqual([]);
    await tablesIntact();
    record("environment names (policy configs, deployments, evaluation)");
  });

  it.each(PROBES)("keeps organisation and project names apart: %s", async (probe) => {
    const tok = await token({ sub: "ada", orgs: { [probe]: "admin" } });
    const project = { organisation: probe, project: probe };
    const policies = server.client(PolicyService, tok);
    await policies.createPolicy({
      project,
      name: "gate",
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
    });
    const listed = await policies.listPolicies({ project });
    expect(listed.policies.map((p) => p.name)).toEqual(["gate"]);
    // A caller whose organisation is the probe sees nothing of acme, and vice versa.
    await expectCode(
      policies.listPolicies({ project: { organisation: "acme", project: probe } }),
      Code.PermissionDenied,
      /has no role in organisation acme/,
    );
    await tablesIntact();
    record("organisation and project names");
  });
});

describe("vote comments and voter names", () => {
  it.each(PROBES)("returns comment and username verbatim in state and history: %s", async (probe) => {
    const project = { organisation: "acme", project: "votes" };
    const policies = server.client(PolicyService, admin);
    if ((await policies.listPolicies({ project })).policies.length === 0)
      await policies.createPolicy({
        project,
        name: "gate",
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
      });
    const id = randomUUID();
    await server.client(ReleaseService, admin).registerReleaseIntent({ project, releaseIntentId: id, authorUserId: "someone" });
    const voter = await token({ sub: `voter-${probe}`, name: probe, orgs: { acme: "member" } });
    const res = await server
      .client(PolicyService, voter)
      .approveRelease({ project, releaseIntentId: id, targetEnvironment: "prod", comment: probe });
    expect(res.state?.decisions).toMatchObject([{ userId: `voter-${probe}`, username: probe, comment: probe }]);
    const history = await server.client(ApprovalAuditService, admin).listApprovalHistory({ project, releaseIntentId: id });
    // The first vote opens the approval request and, meeting the one required approval, approves it:
    // the vote row sits between the request's pending and approved rows, each naming the voter verbatim.
    const voterId = `voter-${probe}`;
    expect(history.entries).toMatchObject([
      { decisionKind: "request_pending", userId: voterId, username: probe },
      { decisionKind: "peer", decision: "approved", userId: voterId, username: probe, comment: probe },
      {
        decisionKind: "request_approved",
        userId: voterId,
        username: probe,
        comment: `approved by ${voterId}'s vote: every approval policy on prod passes`,
      },
    ]);
    await tablesIntact();
    record("vote comments and voter names (state and history)");
  });
});

describe("policy names are identifiers", () => {
  it.each(PROBES)("rejects %s as a policy name with INVALID_ARGUMENT", async (probe) => {
    await expectCode(
      server.client(PolicyService, admin).deletePolicy({ project: { organisation: "acme", project: "x" }, name: probe }),
      Code.InvalidArgument,
      /^name: /,
    );
  });
});
