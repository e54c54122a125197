import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { EnvironmentService } from "../src/gen/releasegate/v1/environment_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { type Cast, cast } from "./support/approval-fixtures.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, PROTOCOLS, startTestServer, type TestServer } from "./support/server.js";

// Forest's supersede-pending policy over the wire: validation, CRUD and the
// verdict EvaluatePolicies gives an older release intent.

let server: TestServer;
let t: Cast;
const clock = new ManualClock();

beforeAll(async () => {
  server = await startTestServer({ clock });
  t = await cast();
});
afterAll(() => server?.stop());

const supersede = (targetEnvironment: string, sameBranchOnly = false, cancelInProgress = false) =>
  ({ case: "supersedePending", value: { targetEnvironment, sameBranchOnly, cancelInProgress } }) as const;

/** A project of its own per test, so verdicts never see another test's intents. */
const freshProject = () => ({ organisation: "acme", project: `sup-${randomUUID().slice(0, 8)}` });

async function createSupersede(project: { organisation: string; project: string }, name: string, sameBranchOnly = false) {
  const { policy } = await server.client(PolicyService, t.ada).createPolicy({
    project,
    name,
    policyType: PolicyType.SUPERSEDE_PENDING,
    config: supersede("prod", sameBranchOnly),
  });
  return policy!;
}

/** Registers an intent on `branch`, one second after the previous one (server clock). */
async function register(project: { organisation: string; project: string }, branch: string, id = randomUUID()): Promise<string> {
  clock.advance(1);
  await server.client(ReleaseService, t.pipeline).registerReleaseIntent({
    project,
    releaseIntentId: id,
    authorUserId: "alice",
    branch,
    version: "1.0.0",
  });
  return id;
}

async function verdict(project: { organisation: string; project: string }, intent?: string) {
  const res = await server.client(PolicyService, t.pipeline).evaluatePolicies({
    project,
    targetEnvironment: "prod",
    releaseIntentId: intent,
  });
  return res.evaluations.map((e) => ({ name: e.policyName, type: e.policyType, passed: e.passed, reason: e.reason }));
}

describe.each(PROTOCOLS)("supersede_pending validation over %s", (protocol) => {
  const project = freshProject();
  const create = (config: ReturnType<typeof supersede>, policyType = PolicyType.SUPERSEDE_PENDING) =>
    server.client(PolicyService, t.ada, protocol).createPolicy({ project, name: "one-pending", policyType, config });

  it("refuses cancel_in_progress true with INVALID_ARGUMENT naming the field", async () => {
    await expectRpcError(
      create(supersede("prod", false, true)),
      Code.InvalidArgument,
      /^supersede_pending\.cancel_in_progress: not supported; /,
    );
  });

  it("refuses an invalid target environment", async () => {
    await expectRpcError(
      create(supersede("prod eu")),
      Code.InvalidArgument,
      /^supersede_pending\.target_environment: "prod eu" is not a valid environment name/,
    );
    await expectRpcError(create(supersede("")), Code.InvalidArgument, "supersede_pending.target_environment: is required");
  });

  it("refuses a policy_type that does not match the config", async () => {
    await expectRpcError(
      create(supersede("prod"), PolicyType.SOAK_TIME),
      Code.InvalidArgument,
      "policy_type: POLICY_TYPE_SOAK_TIME does not match: config is supersede_pending, so policy_type must be POLICY_TYPE_SUPERSEDE_PENDING",
    );
  });

  it("refuses an environment the project has not declared with FAILED_PRECONDITION", async () => {
    const declared = freshProject();
    await server.client(EnvironmentService, t.ada).setProjectEnvironments({ project: declared, environments: ["dev", "prod"] });
    await expectRpcError(
      server.client(PolicyService, t.ada, protocol).createPolicy({
        project: declared,
        name: "one-pending",
        policyType: PolicyType.SUPERSEDE_PENDING,
        config: supersede("staging"),
      }),
      Code.FailedPrecondition,
      /^supersede_pending\.target_environment: environment staging is not declared/,
    );
  });

  it("refuses a member creating one with PERMISSION_DENIED", async () => {
    await expectRpcError(
      server
        .client(PolicyService, t.bob, protocol)
        .createPolicy({ project, name: "one-pending", policyType: PolicyType.SUPERSEDE_PENDING, config: supersede("prod") }),
      Code.PermissionDenied,
      "member bob may not policy.write in organisation acme",
    );
  });
});

describe("supersede_pending CRUD", () => {
  it("creates, lists, updates and deletes a supersede policy, stored as given", async () => {
    const project = freshProject();
    const admin = server.client(PolicyService, t.ada);
    const created = await createSupersede(project, "one-pending");
    expect(created).toMatchObject({
      name: "one-pending",
      enabled: true,
      policyType: PolicyType.SUPERSEDE_PENDING,
      config: { case: "supersedePending", value: { targetEnvironment: "prod", sameBranchOnly: false, cancelInProgress: false } },
    });
    const updated = await admin.updatePolicy({ project, name: "one-pending", config: supersede("PROD", true) });
    expect(updated.policy?.config).toMatchObject({
      case: "supersedePending",
      value: { targetEnvironment: "prod", sameBranchOnly: true },
    });
    await expectRpcError(
      admin.updatePolicy({ project, name: "one-pending", config: supersede("prod", true, true) }),
      Code.InvalidArgument,
      /^supersede_pending\.cancel_in_progress: not supported; /,
    );
    const disabled = await admin.updatePolicy({ project, name: "one-pending", enabled: false });
    expect(disabled.policy?.enabled).toBe(false);
    const { policies } = await admin.listPolicies({ project });
    expect(policies.map((p) => [p.name, p.policyType, p.enabled, p.config.case])).toEqual([
      ["one-pending", PolicyType.SUPERSEDE_PENDING, false, "supersedePending"],
    ]);
    // Straight from the table: the kind and its config, nothing else.
    const row = await server.db.database.db
      .selectFrom("policies")
      .select(["policy_type", "config"])
      .where("organisation", "=", project.organisation)
      .where("project", "=", project.project)
      .executeTakeFirstOrThrow();
    expect(row.policy_type).toBe("supersede_pending");
    expect(typeof row.config === "string" ? JSON.parse(row.config) : row.config).toEqual({
      targetEnvironment: "prod",
      sameBranchOnly: true,
    });
    await admin.deletePolicy({ project, name: "one-pending" });
    expect((await admin.listPolicies({ project })).policies).toEqual([]);
  });
});

describe("EvaluatePolicies with a supersede policy", () => {
  it("passes without a release intent, saying there is nothing to judge", async () => {
    const project = freshProject();
    await createSupersede(project, "one-pending");
    await register(project, "main");
    expect(await verdict(project)).toEqual([
      {
        name: "one-pending",
        type: PolicyType.SUPERSEDE_PENDING,
        passed: true,
        reason: "nothing to supersede: no release intent given (pass release_intent_id to judge one)",
      },
    ]);
  });

  it("reports an older intent superseded by the first newer one; the newest never is superseded", async () => {
    const project = freshProject();
    await createSupersede(project, "one-pending");
    const first = await register(project, "main");
    const second = await register(project, "feature");
    const third = await register(project, "main");
    expect(await verdict(project, first)).toEqual([
      {
        name: "one-pending",
        type: PolicyType.SUPERSEDE_PENDING,
        passed: false,
        reason: `superseded by ${second} (policy 'one-pending')`,
      },
    ]);
    expect((await verdict(project, second))[0]).toMatchObject({
      passed: false,
      reason: `superseded by ${third} (policy 'one-pending')`,
    });
    expect((await verdict(project, third))[0]).toMatchObject({
      passed: true,
      reason: "not superseded: no newer release of the project",
    });
    const all = await server.client(PolicyService, t.pipeline).evaluatePolicies({
      project,
      targetEnvironment: "prod",
      releaseIntentId: first,
    });
    expect(all.allPassed).toBe(false);
  });

  it("with same_branch_only, only a newer intent on the same branch supersedes, and an intent without a branch never is", async () => {
    const project = freshProject();
    await createSupersede(project, "same-branch", true);
    const main1 = await register(project, "main");
    const noBranch = await register(project, "");
    const feature = await register(project, "feature");
    expect((await verdict(project, main1))[0]).toMatchObject({
      passed: true,
      reason: "not superseded: no newer release on branch main",
    });
    const main2 = await register(project, "main");
    await register(project, "");
    expect((await verdict(project, main1))[0]).toMatchObject({
      passed: false,
      reason: `superseded by ${main2} (policy 'same-branch')`,
    });
    expect((await verdict(project, noBranch))[0]).toMatchObject({
      passed: true,
      reason: `not superseded: release ${noBranch} has no branch, and only a newer release on the same branch supersedes`,
    });
    expect((await verdict(project, feature))[0]).toMatchObject({ passed: true });
    expect((await verdict(project, main2))[0]).toMatchObject({ passed: true });
  });

  it("does not supersede an older intent already deployed to the target environment", async () => {
    const project = freshProject();
    await createSupersede(project, "one-pending");
    const old = await register(project, "main");
    const staged = await register(project, "main");
    await server.client(ReleaseService, t.pipeline).recordDeployment({
      project,
      environment: "prod",
      releaseIntentId: old,
      status: DeploymentStatus.SUCCEEDED,
    });
    // A failed deploy does not make a release deployed.
    await server.client(ReleaseService, t.pipeline).recordDeployment({
      project,
      environment: "prod",
      releaseIntentId: staged,
      status: DeploymentStatus.FAILED,
    });
    await register(project, "main");
    expect((await verdict(project, old))[0]).toMatchObject({
      passed: true,
      reason: `not superseded: release ${old} is already deployed to prod`,
    });
    expect((await verdict(project, staged))[0]).toMatchObject({ passed: false });
  });

  it("orders intents registered at the same instant as they were registered, whatever their ids", async () => {
    const project = freshProject();
    await createSupersede(project, "one-pending");
    clock.advance(1);
    const low = "00000000-0000-4000-8000-000000000001";
    const high = "ffffffff-ffff-4fff-bfff-fffffffffff1";
    // Same server instant: register without advancing the clock.
    for (const id of [high, low])
      await server.client(ReleaseService, t.pipeline).registerReleaseIntent({ project, releaseIntentId: id, branch: "main" });
    expect((await verdict(project, high))[0]).toMatchObject({
      passed: false,
      reason: `superseded by ${low} (policy 'one-pending')`,
    });
    expect((await verdict(project, low))[0]).toMatchObject({ passed: true });
  });

  it("judges nothing for a disabled policy or another environment", async () => {
    const project = freshProject();
    await createSupersede(project, "one-pending");
    const old = await register(project, "main");
    await register(project, "main");
    await server.client(PolicyService, t.ada).updatePolicy({ project, name: "one-pending", enabled: false });
    expect(await verdict(project, old)).toEqual([]);
    const staging = await server.client(PolicyService, t.pipeline).evaluatePolicies({
      project,
      targetEnvironment: "staging",
      releaseIntentId: old,
    });
    expect(staging.evaluations).toEqual([]);
  });

  it("answers NOT_FOUND for an unknown intent", async () => {
    const project = freshProject();
    await createSupersede(project, "one-pending");
    const unknown = randomUUID();
    await expectRpcError(
      server.client(PolicyService, t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: unknown }),
      Code.NotFound,
      `release_intent_id: release intent ${unknown} not found in ${project.organisation}/${project.project}`,
    );
  });
});
