import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

// The ways around the gate that issue 11 lists, tried as an adversary would:
// each must be refused, or must not pass, with a message a person can act on.

const DAY_S = 24 * 3600;
const clock = new ManualClock(Date.parse("2026-06-01T12:00:00Z"));
let server: TestServer;
let pipeline: string;
let admin: string;
let member: string;
let bob: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  pipeline = await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  member = await token({ sub: "mia", orgs: { acme: "member" } });
  bob = await token({ sub: "bob", orgs: { acme: "member" } });
});
afterAll(() => server?.stop());

let seq = 0;

describe.each(PROTOCOLS)("over %s", (protocol) => {
  const policies = (tok = admin) => server.client(PolicyService, tok, protocol);
  const releases = (tok = pipeline) => server.client(ReleaseService, tok, protocol);
  const audit = (tok = admin) => server.client(ApprovalAuditService, tok, protocol);
  const freshProject = () => ({ organisation: "acme", project: `bypass-${protocol}-${++seq}` });

  /** A fresh project with one policy and one intent registered by `registrant` (default: the pipeline). */
  async function gated(
    policy: { name: string; policyType: PolicyType; config: Parameters<ReturnType<typeof policies>["createPolicy"]>[0]["config"] },
    intent: { branch?: string; authorUserId?: string; registrant?: string } = {},
  ) {
    const project = freshProject();
    await policies().createPolicy({ project, ...policy });
    const { releaseIntent } = await releases(intent.registrant).registerReleaseIntent({
      project,
      branch: intent.branch ?? "main",
      version: "1",
      ...(intent.authorUserId !== undefined ? { authorUserId: intent.authorUserId } : {}),
    });
    return { project, intentId: releaseIntent!.releaseIntentId, intent: releaseIntent! };
  }

  describe("soak time counts from when releasegate recorded the deploy", () => {
    const soakProject = () =>
      gated({
        name: "soak-staging",
        policyType: PolicyType.SOAK_TIME,
        config: {
          case: "soakTime",
          value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: BigInt(DAY_S) },
        },
      });

    it("refuses a deploy reported as finished before the intent was registered, naming finished_at", async () => {
      const { project, intentId } = await soakProject();
      await expectRpcError(
        releases().recordDeployment({
          project,
          environment: "staging",
          releaseIntentId: intentId,
          status: DeploymentStatus.SUCCEEDED,
          finishedAt: "2000-01-01T00:00:00Z",
        }),
        Code.InvalidArgument,
        `finished_at: 2000-01-01T00:00:00.000Z is before release intent ${intentId} was registered (${clock.now().toISOString()})`,
      );
      const res = await policies(member).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: intentId });
      expect(res.allPassed).toBe(false);
      expect(res.evaluations[0]?.reason).toMatch(/^soak time not met: no successful deploy of release/);
    });

    it("refuses a finish time more than a minute in the future", async () => {
      const { project, intentId } = await soakProject();
      await expectRpcError(
        releases().recordDeployment({
          project,
          environment: "staging",
          releaseIntentId: intentId,
          status: DeploymentStatus.SUCCEEDED,
          finishedAt: new Date(clock.now().getTime() + 61_000).toISOString(),
        }),
        Code.InvalidArgument,
        "finished_at: must not be more than 60s in the future",
      );
    });

    it("does not let an early finish time (after registration) shorten the soak", async () => {
      const { project, intentId } = await soakProject();
      const registeredAt = clock.now();
      clock.advance(DAY_S);
      // Reported as finished right at registration, a day ago; recorded now.
      const { deployment } = await releases().recordDeployment({
        project,
        environment: "staging",
        releaseIntentId: intentId,
        status: DeploymentStatus.SUCCEEDED,
        finishedAt: registeredAt.toISOString(),
      });
      expect(deployment?.finishedAt).toBe(registeredAt.toISOString());
      expect(deployment?.recordedAt).toBe(clock.now().toISOString());
      const evaluate = () =>
        policies(member).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: intentId });
      let res = await evaluate();
      expect(res.allPassed).toBe(false);
      expect(res.evaluations[0]?.reason).toBe(`soak time not met: ${DAY_S}s remaining after staging deploy`);
      clock.advance(DAY_S - 1);
      expect((await evaluate()).allPassed).toBe(false);
      clock.advance(1);
      res = await evaluate();
      expect(res.allPassed).toBe(true);
      expect(res.evaluations[0]?.reason).toBe(`soak time met: ${DAY_S}s since staging deploy (required ${DAY_S}s)`);
    });

    it("counts a project-wide soak (no intent named) from the recording time too", async () => {
      const { project, intentId } = await soakProject();
      const registeredAt = clock.now();
      clock.advance(DAY_S);
      await releases().recordDeployment({
        project,
        environment: "staging",
        releaseIntentId: intentId,
        status: DeploymentStatus.SUCCEEDED,
        finishedAt: registeredAt.toISOString(),
      });
      const res = await policies(member).evaluatePolicies({ project, targetEnvironment: "prod", branch: "main" });
      expect(res.allPassed).toBe(false);
    });
  });

  describe("the intent's branch is authoritative", () => {
    const branchProject = (branch: string) =>
      gated(
        {
          name: "main-only",
          policyType: PolicyType.BRANCH_RESTRICTION,
          config: { case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern: "^main$" } },
        },
        { branch },
      );

    it("does not pass an intent on feature/x when the request claims main, naming both branches", async () => {
      const { project, intentId } = await branchProject("feature/x");
      const res = await policies(member).evaluatePolicies({
        project,
        targetEnvironment: "prod",
        releaseIntentId: intentId,
        branch: "main",
      });
      expect(res.allPassed).toBe(false);
      expect(res.evaluations).toHaveLength(1);
      expect(res.evaluations[0]).toMatchObject({
        policyName: "main-only",
        passed: false,
        reason: `request branch main differs from release intent ${intentId}'s branch feature/x; the intent's branch is what counts`,
      });
    });

    it("does not pass an intent on main when the request names another branch", async () => {
      const { project, intentId } = await branchProject("main");
      const res = await policies(member).evaluatePolicies({
        project,
        targetEnvironment: "prod",
        releaseIntentId: intentId,
        branch: "feature/x",
      });
      expect(res.allPassed).toBe(false);
      expect(res.evaluations[0]?.reason).toMatch(/^request branch feature\/x differs from release intent/);
    });

    it("uses the intent's branch when the request gives none, or the same one", async () => {
      const { project, intentId } = await branchProject("main");
      for (const branch of [undefined, "", "main"]) {
        const res = await policies(member).evaluatePolicies({
          project,
          targetEnvironment: "prod",
          releaseIntentId: intentId,
          ...(branch !== undefined ? { branch } : {}),
        });
        expect(res.allPassed, `branch ${branch}`).toBe(true);
        expect(res.evaluations[0]?.reason).toBe("branch main matches ^main$");
      }
    });

    it("uses the request's branch for an intent registered without one, and without an intent (Forest's CLI)", async () => {
      const { project, intentId } = await branchProject("");
      const withIntent = await policies(member).evaluatePolicies({
        project,
        targetEnvironment: "prod",
        releaseIntentId: intentId,
        branch: "main",
      });
      expect(withIntent.allPassed).toBe(true);
      const without = await policies(member).evaluatePolicies({ project, targetEnvironment: "prod", branch: "main" });
      expect(without.allPassed).toBe(true);
      const other = await policies(member).evaluatePolicies({ project, targetEnvironment: "prod", branch: "feature/x" });
      expect(other.allPassed).toBe(false);
    });
  });

  describe("four eyes cover the registrant", () => {
    const proxiedIntent = (registrant: string) =>
      gated(
        {
          name: "one-approval",
          policyType: PolicyType.EXTERNAL_APPROVAL,
          config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
        },
        { authorUserId: "alice", registrant },
      );

    it("records who registered an intent, and GetReleaseIntent shows it", async () => {
      const { project, intentId, intent } = await proxiedIntent(admin);
      expect(intent).toMatchObject({ authorUserId: "alice", registeredByUserId: "ada", registeredByActorType: "user" });
      const { releaseIntent } = await releases(member).getReleaseIntent({ project, releaseIntentId: intentId });
      expect(releaseIntent).toMatchObject({ registeredByUserId: "ada", registeredByActorType: "user" });
      const byPipeline = await proxiedIntent(pipeline);
      expect(byPipeline.intent).toMatchObject({ registeredByUserId: "deploy-bot", registeredByActorType: "service" });
    });

    it("refuses the approval of an admin who registered the intent for another author, saying why", async () => {
      const { project, intentId } = await proxiedIntent(admin);
      await expectRpcError(
        policies(admin).externalApproveRelease({ project, releaseIntentId: intentId, targetEnvironment: "prod" }),
        Code.PermissionDenied,
        `ada registered release intent ${intentId} for author alice and cannot approve it (four eyes cover the registrant); an organisation admin may pass force_bypass`,
      );
      const res = await policies(member).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: intentId });
      expect(res.allPassed).toBe(false);
    });

    it("lets the admin registrant bypass on the record (admin_override), and the history shows both parties", async () => {
      const { project, intentId } = await proxiedIntent(admin);
      const { state } = await policies(admin).externalApproveRelease({
        project,
        releaseIntentId: intentId,
        targetEnvironment: "prod",
        forceBypass: true,
        comment: "hotfix, on call",
      });
      expect(state?.decisions[0]).toMatchObject({ userId: "ada", decisionKind: "admin_override" });
      const all = (await audit().listApprovalHistory({ project })).entries;
      // Votes only: the request's own lifecycle rows (request_*) are tested in requests-*.test.ts.
      const entries = all.filter((e) => !e.decisionKind.startsWith("request_"));
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({
        userId: "ada",
        decisionKind: "admin_override",
        intentAuthorUserId: "alice",
        intentRegisteredByUserId: "ada",
      });
    });

    it("lets the registrant reject, and a third person approve", async () => {
      const { project, intentId } = await proxiedIntent(admin);
      await policies(admin).externalRejectRelease({ project, releaseIntentId: intentId, targetEnvironment: "prod" });
      const { state } = await policies(bob).externalApproveRelease({
        project,
        releaseIntentId: intentId,
        targetEnvironment: "prod",
      });
      expect(state?.decisions.map((d) => [d.userId, d.decision, d.decisionKind])).toEqual([
        ["ada", "rejected", "peer"],
        ["bob", "approved", "peer"],
      ]);
    });

    it("leaves intents registered by a pipeline as they were: any member but the author may approve", async () => {
      const { project, intentId } = await proxiedIntent(pipeline);
      const { state } = await policies(bob).externalApproveRelease({
        project,
        releaseIntentId: intentId,
        targetEnvironment: "prod",
      });
      expect(state?.currentApprovals).toBe(1);
      await expectRpcError(
        policies(pipeline).externalApproveRelease({ project, releaseIntentId: intentId, targetEnvironment: "prod" }),
        Code.PermissionDenied,
        /^service account deploy-bot may not approval\.vote/,
      );
    });
  });
});
