import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { EnvironmentService } from "../src/gen/releasegate/v1/environment_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { type Cast, cast, registerIntent } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

// Issue 11, items 3 and 4 over the wire: one spelling per environment (ASCII
// case folded, everything else that is not [a-z0-9._-] refused) and declared
// environments. Runs on Postgres (DATABASE_URL set) and on PGlite.

const clock = new ManualClock(Date.parse("2026-04-01T10:00:00Z"));
let server: TestServer;
let t: Cast;
let adminService: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  t = await cast();
  adminService = await token({ sub: "ops-bot", orgs: { acme: "admin" }, service: true });
});
afterAll(() => server?.stop());

let seq = 0;
const newProject = (prefix: string) => ({ organisation: "acme", project: `${prefix}-${++seq}` });

const RULE =
  "is not a valid environment name: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit (names are case-insensitive)";

/** What a person might type for `prod` and mean something else, with how the message shows it. */
const LOOK_ALIKES: ReadonlyArray<[string, string]> = [
  ["prod ", '"prod "'],
  [" prod", '" prod"'],
  ["prod\u200b", '"prod\\u200b"'],
  ["pr\u043ed", '"pr\\u043ed"'],
  ["ｐｒｏｄ", '"\\uff50\\uff52\\uff4f\\uff44"'],
  ["prod\t", '"prod\\t"'],
  ["prod\u0000", '"prod\\u0000"'],
  [".prod", '".prod"'],
  ["p".repeat(64), `"${"p".repeat(64)}"`],
];

const admin = () => server.client(PolicyService, t.ada);
const releases = () => server.client(ReleaseService, t.pipeline);
const environments = (tok = t.ada) => server.client(EnvironmentService, tok);

async function approvalPolicy(project: { organisation: string; project: string }, name: string, target: string) {
  return admin().createPolicy({
    project,
    name,
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: target, requiredApprovals: 1 } },
  });
}

async function soakPolicy(project: { organisation: string; project: string }, name: string, source: string, target: string) {
  return admin().createPolicy({
    project,
    name,
    policyType: PolicyType.SOAK_TIME,
    config: { case: "soakTime", value: { sourceEnvironment: source, targetEnvironment: target, durationSeconds: 3600n } },
  });
}

/** The first message of a watch stream (or its error), then the stream is closed. */
async function firstWatchMessage(req: { project: { organisation: string; project: string }; targetEnvironment: string }) {
  const controller = new AbortController();
  const stream = server.client(ApprovalAuditService, t.bob).watchApprovalEvents(req, { signal: controller.signal });
  try {
    return await stream[Symbol.asyncIterator]().next();
  } finally {
    controller.abort();
  }
}

describe(`environment names on ${testDatabaseKind()}`, { timeout: 60_000 }, () => {
  const project = newProject("names");
  const intent = randomUUID();
  beforeAll(async () => {
    await server.client(ReleaseService, t.ada).registerReleaseIntent({
      project,
      releaseIntentId: intent,
      authorUserId: "alice",
      branch: "feature/x",
    });
  });

  /** Every RPC field that names an environment, as a call that sends `env` there. */
  const FIELDS: ReadonlyArray<[string, (env: string) => Promise<unknown>]> = [
    [
      "soak_time.source_environment",
      (env) => soakPolicy(project, "soak", env, "prod"),
    ],
    ["soak_time.target_environment", (env) => soakPolicy(project, "soak", "staging", env)],
    [
      "branch_restriction.target_environment",
      (env) =>
        admin().createPolicy({
          project,
          name: "branch",
          policyType: PolicyType.BRANCH_RESTRICTION,
          config: { case: "branchRestriction", value: { targetEnvironment: env, branchPattern: "^main$" } },
        }),
    ],
    ["external_approval.target_environment", (env) => approvalPolicy(project, "two-eyes", env)],
    [
      "external_approval.target_environment",
      (env) =>
        admin().updatePolicy({
          project,
          name: "two-eyes",
          config: { case: "externalApproval", value: { targetEnvironment: env, requiredApprovals: 1 } },
        }),
    ],
    [
      "environment",
      (env) =>
        releases().recordDeployment({
          project,
          environment: env,
          releaseIntentId: intent,
          status: DeploymentStatus.SUCCEEDED,
        }),
    ],
    [
      "target_environment",
      (env) => server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: intent, targetEnvironment: env }),
    ],
    [
      "target_environment",
      (env) => server.client(PolicyService, t.bob).rejectRelease({ project, releaseIntentId: intent, targetEnvironment: env }),
    ],
    [
      "target_environment",
      (env) =>
        server.client(PolicyService, t.bob).getExternalApprovalState({ project, releaseIntentId: intent, targetEnvironment: env }),
    ],
    [
      "target_environment",
      (env) => server.client(PolicyService, t.pipeline).evaluatePolicies({ project, targetEnvironment: env }),
    ],
    [
      "target_environment",
      (env) => server.client(ApprovalAuditService, t.bob).listApprovalHistory({ project, targetEnvironment: env }),
    ],
    ["target_environment", (env) => firstWatchMessage({ project, targetEnvironment: env })],
    ["environments[1]", (env) => environments().setProjectEnvironments({ project, environments: ["dev", env] })],
  ];

  it("refuses every look-alike in every environment field with INVALID_ARGUMENT naming the field", async () => {
    for (const [field, call] of FIELDS)
      for (const [value, shown] of LOOK_ALIKES)
        await expectRpcError(call(value), Code.InvalidArgument, `${field}: ${shown} ${RULE}`);
    // Nothing was written on the way.
    expect((await admin().listPolicies({ project })).policies).toEqual([]);
    expect(await environments().getProjectEnvironments({ project })).toMatchObject({ declared: false });
  });

  it("says a required environment field is required when empty", async () => {
    // All but the history and watch filters (empty: no filter) and the list (an empty entry is a bad name).
    const required = FIELDS.filter((_, i) => i < 10);
    expect(required).toHaveLength(10);
    for (const [field, call] of required) await expectRpcError(call(""), Code.InvalidArgument, `${field}: is required`);
  });

  it("checks the name before the caller's role (a stranger's look-alike is INVALID_ARGUMENT)", async () => {
    await expectRpcError(
      server.client(PolicyService, t.mallory).evaluatePolicies({ project, targetEnvironment: "prod " }),
      Code.InvalidArgument,
      `target_environment: "prod " ${RULE}`,
    );
    await expectRpcError(
      server.client(PolicyService, t.mallory).evaluatePolicies({ project, targetEnvironment: "prod" }),
      Code.PermissionDenied,
      /no role in organisation acme/,
    );
  });

  it("folds case: a policy created for PROD gates prod, and Prod is blocked by it", async () => {
    const p = newProject("fold");
    const { policy } = await admin().createPolicy({
      project: p,
      name: "main-only",
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: { case: "branchRestriction", value: { targetEnvironment: "PROD", branchPattern: "^main$" } },
    });
    expect(policy?.config).toMatchObject({ case: "branchRestriction", value: { targetEnvironment: "prod" } });
    for (const env of ["prod", "Prod", "PROD", "pRoD"]) {
      const r = await server
        .client(PolicyService, t.pipeline)
        .evaluatePolicies({ project: p, targetEnvironment: env, branch: "feature/x" });
      expect(r.allPassed, env).toBe(false);
      expect(r.evaluations.map((e) => [e.policyName, e.passed])).toEqual([["main-only", false]]);
    }
  });

  it("folds case for soak: a deploy to STAGING counts for a soak from staging, and responses carry the folded name", async () => {
    const p = newProject("fold-soak");
    const { policy } = await soakPolicy(p, "soak", "Staging", "prod");
    expect(policy?.config).toMatchObject({ value: { sourceEnvironment: "staging", targetEnvironment: "prod" } });
    const id = await registerIntent(server, t.ada, p);
    const { deployment } = await releases().recordDeployment({
      project: p,
      environment: "STAGING",
      releaseIntentId: id,
      status: DeploymentStatus.SUCCEEDED,
    });
    expect(deployment?.environment).toBe("staging");
    const r = await server.client(PolicyService, t.pipeline).evaluatePolicies({ project: p, targetEnvironment: "Prod", releaseIntentId: id });
    expect(r.evaluations).toHaveLength(1);
    expect(r.evaluations[0]?.reason).toMatch(/staging/);
    expect(r.evaluations[0]?.reason).not.toMatch(/no successful deploy/i);
  });

  it("rejects a soak whose source and target are one environment in two spellings", async () => {
    await expectRpcError(
      soakPolicy(newProject("same"), "soak", "Prod", "prod"),
      Code.InvalidArgument,
      "soak_time.source_environment: must differ from target_environment",
    );
  });

  it("folds case for votes: a vote on Prod counts for prod and is listed as prod", async () => {
    const p = newProject("fold-vote");
    await approvalPolicy(p, "two-eyes", "prod");
    const id = await registerIntent(server, t.ada, p);
    const voted = await server
      .client(PolicyService, t.bob)
      .externalApproveRelease({ project: p, releaseIntentId: id, targetEnvironment: "Prod" });
    expect(voted.state).toMatchObject({ currentApprovals: 1, requiredApprovals: 1 });
    const state = await server
      .client(PolicyService, t.carol)
      .getExternalApprovalState({ project: p, releaseIntentId: id, targetEnvironment: "PROD" });
    expect(state.state?.decisions.map((d) => d.userId)).toEqual(["bob"]);
    const evaluated = await server
      .client(PolicyService, t.pipeline)
      .evaluatePolicies({ project: p, targetEnvironment: "prod", releaseIntentId: id });
    expect(evaluated.allPassed).toBe(true);
    const history = await server.client(ApprovalAuditService, t.bob).listApprovalHistory({ project: p, targetEnvironment: "PROD" });
    // The vote opened the approval request and approved it: the request's rows are folded too.
    expect(history.entries.map((e) => [e.userId, e.targetEnvironment, e.decisionKind])).toEqual([
      ["bob", "prod", "request_pending"],
      ["bob", "prod", "peer"],
      ["bob", "prod", "request_approved"],
    ]);
  });
});

describe(`declared environments on ${testDatabaseKind()}`, { timeout: 60_000 }, () => {
  it("an admin sets them (folded, in the given order) and anyone in the organisation reads them", async () => {
    const project = newProject("decl");
    expect(await environments(t.bob).getProjectEnvironments({ project })).toMatchObject({ environments: [], declared: false });
    const set = await environments().setProjectEnvironments({ project, environments: ["dev", "Staging", "PROD"] });
    expect(set.environments).toEqual(["dev", "staging", "prod"]);
    for (const tok of [t.ada, t.bob, t.pipeline, adminService])
      expect(await environments(tok).getProjectEnvironments({ project })).toMatchObject({
        environments: ["dev", "staging", "prod"],
        declared: true,
      });
    // A new list replaces the old one, order included.
    expect((await environments().setProjectEnvironments({ project, environments: ["prod", "dev"] })).environments).toEqual([
      "prod",
      "dev",
    ]);
    expect((await environments().getProjectEnvironments({ project })).environments).toEqual(["prod", "dev"]);
  });

  it("an empty list removes the declaration", async () => {
    const project = newProject("clear");
    await environments().setProjectEnvironments({ project, environments: ["dev"] });
    expect((await environments().setProjectEnvironments({ project, environments: [] })).environments).toEqual([]);
    expect(await environments().getProjectEnvironments({ project })).toMatchObject({ environments: [], declared: false });
    // Clearing what is not declared is fine too.
    expect((await environments().setProjectEnvironments({ project, environments: [] })).environments).toEqual([]);
    const r = await server.client(PolicyService, t.pipeline).evaluatePolicies({ project, targetEnvironment: "anything" });
    expect(r).toMatchObject({ allPassed: true, evaluations: [] });
  });

  it("members, services (even with the admin role) and strangers may not set them", async () => {
    const project = newProject("deny");
    await expectRpcError(
      environments(t.bob).setProjectEnvironments({ project, environments: ["dev"] }),
      Code.PermissionDenied,
      "member bob may not environment.write in organisation acme",
    );
    await expectRpcError(
      environments(t.pipeline).setProjectEnvironments({ project, environments: ["dev"] }),
      Code.PermissionDenied,
      "service account deploy-bot may not environment.write in organisation acme",
    );
    await expectRpcError(
      environments(adminService).setProjectEnvironments({ project, environments: ["dev"] }),
      Code.PermissionDenied,
      "service account ops-bot may not environment.write in organisation acme",
    );
    await expectRpcError(
      environments(t.mallory).getProjectEnvironments({ project }),
      Code.PermissionDenied,
      /mallory has no role in organisation acme/,
    );
    expect(await environments().getProjectEnvironments({ project })).toMatchObject({ declared: false });
  });

  it("refuses duplicates after folding and more than 64 names", async () => {
    const project = newProject("dup");
    await expectRpcError(
      environments().setProjectEnvironments({ project, environments: ["dev", "prod", "Prod"] }),
      Code.InvalidArgument,
      "environments[2]: prod is already listed at environments[1] (names are case-insensitive); list each environment once",
    );
    const many = Array.from({ length: 65 }, (_, i) => `env-${i}`);
    await expectRpcError(
      environments().setProjectEnvironments({ project, environments: many }),
      Code.InvalidArgument,
      "environments: at most 64 environments, got 65",
    );
    expect((await environments().setProjectEnvironments({ project, environments: many.slice(0, 64) })).environments).toHaveLength(64);
  });

  it("evaluating an undeclared environment answers exactly one failing declared-environments evaluation", async () => {
    const project = { organisation: "acme", project: "web" };
    await environments().setProjectEnvironments({ project, environments: ["dev", "staging", "prod"] });
    await approvalPolicy(project, "two-eyes", "prod");
    const id = await registerIntent(server, t.ada, project);
    for (const releaseIntentId of [undefined, id]) {
      const r = await server
        .client(PolicyService, t.pipeline)
        .evaluatePolicies({ project, targetEnvironment: "prdo", releaseIntentId, branch: "main" });
      expect(r.allPassed).toBe(false);
      expect(r.evaluations.map((e) => ({ ...e, $typeName: undefined }))).toEqual([
        {
          $typeName: undefined,
          policyName: "declared-environments",
          policyType: PolicyType.UNSPECIFIED,
          passed: false,
          reason: "unknown environment prdo for acme/web; declared: dev, staging, prod",
          externalApprovalState: undefined,
        },
      ]);
    }
    // Connect JSON shows it the same way.
    const json = await server
      .client(PolicyService, t.pipeline, "connect")
      .evaluatePolicies({ project, targetEnvironment: "PRDO" });
    expect(json.evaluations[0]?.reason).toBe("unknown environment prdo for acme/web; declared: dev, staging, prod");
    // An unknown intent is still NOT_FOUND first.
    const unknown = randomUUID();
    await expectRpcError(
      server.client(PolicyService, t.pipeline).evaluatePolicies({ project, targetEnvironment: "prdo", releaseIntentId: unknown }),
      Code.NotFound,
      `release_intent_id: release intent ${unknown} not found in acme/web`,
    );
    // A declared environment evaluates its policies as before.
    const declared = await server
      .client(PolicyService, t.pipeline)
      .evaluatePolicies({ project, targetEnvironment: "Prod", releaseIntentId: id });
    expect(declared.evaluations.map((e) => [e.policyName, e.passed])).toEqual([["two-eyes", false]]);
    const dev = await server.client(PolicyService, t.pipeline).evaluatePolicies({ project, targetEnvironment: "dev" });
    expect(dev).toMatchObject({ allPassed: true, evaluations: [] });
  });

  describe("with a declaration, writes naming an undeclared environment are FAILED_PRECONDITION", () => {
    const project = newProject("pre");
    const declared = () => `is not declared for acme/${project.project}; declared: dev, staging, prod`;
    let intent = "";
    beforeAll(async () => {
      await environments().setProjectEnvironments({ project, environments: ["dev", "staging", "prod"] });
      await approvalPolicy(project, "two-eyes", "prod");
      intent = await registerIntent(server, t.ada, project);
    });

    it("CreatePolicy (source and target) and UpdatePolicy", async () => {
      await expectRpcError(
        soakPolicy(project, "soak-qa", "qa", "prod"),
        Code.FailedPrecondition,
        `soak_time.source_environment: environment qa ${declared()}`,
      );
      await expectRpcError(
        soakPolicy(project, "soak-qa", "staging", "QA"),
        Code.FailedPrecondition,
        `soak_time.target_environment: environment qa ${declared()}`,
      );
      await expectRpcError(
        admin().updatePolicy({
          project,
          name: "two-eyes",
          config: { case: "externalApproval", value: { targetEnvironment: "qa", requiredApprovals: 1 } },
        }),
        Code.FailedPrecondition,
        `external_approval.target_environment: environment qa ${declared()}`,
      );
      expect((await admin().listPolicies({ project })).policies.map((p) => [p.name, p.config.value?.targetEnvironment])).toEqual([
        ["two-eyes", "prod"],
      ]);
      // Declared names (any case) are fine; enabling or disabling needs no check.
      await soakPolicy(project, "soak-staging", "Staging", "prod");
      await admin().updatePolicy({ project, name: "two-eyes", enabled: false });
      await admin().updatePolicy({ project, name: "two-eyes", enabled: true });
    });

    it("RecordDeployment", async () => {
      await expectRpcError(
        releases().recordDeployment({ project, environment: "qa", releaseIntentId: intent, status: DeploymentStatus.SUCCEEDED }),
        Code.FailedPrecondition,
        `environment: environment qa ${declared()}`,
      );
      const { deployment } = await releases().recordDeployment({
        project,
        environment: "Staging",
        releaseIntentId: intent,
        status: DeploymentStatus.SUCCEEDED,
      });
      expect(deployment?.environment).toBe("staging");
    });

    it("votes and GetExternalApprovalState, checked before the intent lookup", async () => {
      const bob = server.client(PolicyService, t.bob);
      for (const releaseIntentId of [intent, randomUUID()]) {
        const req = { project, releaseIntentId, targetEnvironment: "prdo" };
        const message = `target_environment: environment prdo ${declared()}`;
        await expectRpcError(bob.externalApproveRelease(req), Code.FailedPrecondition, message);
        await expectRpcError(bob.approveRelease(req), Code.FailedPrecondition, message);
        await expectRpcError(bob.externalRejectRelease(req), Code.FailedPrecondition, message);
        await expectRpcError(bob.getExternalApprovalState(req), Code.FailedPrecondition, message);
        await expectRpcError(bob.getApprovalState(req), Code.FailedPrecondition, message);
      }
      // Nothing was recorded.
      expect((await server.client(ApprovalAuditService, t.bob).listApprovalHistory({ project })).entries).toEqual([]);
    });

    it("history and watch filters are not checked against the declaration", async () => {
      const history = await server.client(ApprovalAuditService, t.bob).listApprovalHistory({ project, targetEnvironment: "qa" });
      expect(history.entries).toEqual([]);
      expect((await firstWatchMessage({ project, targetEnvironment: "qa" })).value).toMatchObject({ subscribed: true });
    });
  });

  it("SetProjectEnvironments refuses a list that leaves out an environment a policy uses, enabled or not", async () => {
    const project = newProject("orphan");
    await soakPolicy(project, "soak-staging", "qa", "prod");
    await admin().updatePolicy({ project, name: "soak-staging", enabled: false });
    await expectRpcError(
      environments().setProjectEnvironments({ project, environments: ["dev", "staging", "prod"] }),
      Code.FailedPrecondition,
      "environments: policy soak-staging uses environment qa, which the new list does not declare; add it or change the policy first",
    );
    await expectRpcError(
      environments().setProjectEnvironments({ project, environments: ["qa", "staging"] }),
      Code.FailedPrecondition,
      "environments: policy soak-staging uses environment prod, which the new list does not declare; add it or change the policy first",
    );
    // Nothing was written.
    expect(await environments().getProjectEnvironments({ project })).toMatchObject({ declared: false });
    expect(
      (await environments().setProjectEnvironments({ project, environments: ["dev", "QA", "staging", "prod"] })).environments,
    ).toEqual(["dev", "qa", "staging", "prod"]);
    // Deleting the policy frees qa.
    await admin().deletePolicy({ project, name: "soak-staging" });
    expect((await environments().setProjectEnvironments({ project, environments: ["prod"] })).environments).toEqual(["prod"]);
  });

  it("a policy write and a declaration that would orphan it cannot both commit", async () => {
    const project = newProject("race");
    await environments().setProjectEnvironments({ project, environments: ["dev", "qa", "prod"] });
    for (let round = 0; round < 5; round++) {
      const name = `soak-${round}`;
      const results = await Promise.allSettled([
        soakPolicy(project, name, "qa", "prod"),
        environments().setProjectEnvironments({ project, environments: ["dev", "prod"] }),
      ]);
      const policies = (await admin().listPolicies({ project })).policies;
      const list = await environments().getProjectEnvironments({ project });
      // Whatever order they ran in, no policy names an undeclared environment.
      for (const p of policies)
        if (p.config.case === "soakTime") expect(list.environments).toContain(p.config.value.sourceEnvironment);
      expect(results.filter((r) => r.status === "fulfilled").length).toBeGreaterThanOrEqual(1);
      // Back to the start for the next round.
      for (const p of policies) await admin().deletePolicy({ project, name: p.name });
      await environments().setProjectEnvironments({ project, environments: ["dev", "qa", "prod"] });
    }
  });
});

describe(`declared environments across two replicas on one ${testDatabaseKind()} database`, { timeout: 60_000 }, () => {
  // Less than the cache's 5 s lifetime: B must learn of changes by notification.
  const WAIT_MS = 3_000;
  let a: TestServer;
  let b: TestServer;
  const project = { organisation: "acme", project: "replicas" };
  beforeAll(async () => {
    a = await startTestServer();
    b = await startTestServer({ shared: a.db });
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  const evaluate = (server: TestServer) =>
    server.client(PolicyService, t.pipeline).evaluatePolicies({ project, targetEnvironment: "prdo" });

  async function eventuallyOnB(allPassed: boolean) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const r = await evaluate(b);
      if (r.allPassed === allPassed) return r;
      if (Date.now() > deadline) throw new Error(`replica B still answers ${JSON.stringify(r.evaluations)}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it("B drops its cached project when A declares, changes or clears the environments", async () => {
    expect((await evaluate(b)).allPassed).toBe(true); // B caches "no declaration"
    await a.client(EnvironmentService, t.ada).setProjectEnvironments({ project, environments: ["dev", "prod"] });
    // A itself answers from the new declaration at once.
    expect((await evaluate(a)).evaluations[0]?.reason).toBe("unknown environment prdo for acme/replicas; declared: dev, prod");
    expect((await eventuallyOnB(false)).evaluations[0]?.reason).toBe(
      "unknown environment prdo for acme/replicas; declared: dev, prod",
    );
    await a.client(EnvironmentService, t.ada).setProjectEnvironments({ project, environments: ["dev", "prdo", "prod"] });
    await eventuallyOnB(true);
    await a.client(EnvironmentService, t.ada).setProjectEnvironments({ project, environments: ["prod"] });
    await eventuallyOnB(false);
    await a.client(EnvironmentService, t.ada).setProjectEnvironments({ project, environments: [] });
    await eventuallyOnB(true);
  });

  it("B also notices a change made with plain SQL (the table's trigger notifies)", async () => {
    await a.client(EnvironmentService, t.ada).setProjectEnvironments({ project, environments: ["dev"] });
    await eventuallyOnB(false);
    await sql`delete from project_environments where organisation = 'acme' and project = 'replicas'`.execute(a.db.database.db);
    await eventuallyOnB(true);
  });
});
