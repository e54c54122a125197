import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { ManualClock, PROTOCOLS, type Protocol, startTestServer, type TestServer, token } from "./support/server.js";

// EvaluatePolicies over the wire with real intents and deployments; time is a
// ManualClock shared by the server and the test.

const clock = new ManualClock(Date.parse("2026-04-01T10:00:00Z"));
let server: TestServer;
let admin: string;
let pipeline: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  pipeline = await token({ sub: "ci", orgs: { acme: "member" }, service: true });
});
afterAll(() => server?.stop());

let seq = 0;

/** A fresh project with helpers bound to it, so tests never see each other's data. */
function fixture(protocol: Protocol) {
  const project = { organisation: "acme", project: `eval-${protocol}-${++seq}` };
  const policies = server.client(PolicyService, admin, protocol);
  const releases = server.client(ReleaseService, pipeline, protocol);
  return {
    project,
    async soak(name: string, durationSeconds: number, source = "staging", target = "prod") {
      await policies.createPolicy({
        project,
        name,
        policyType: PolicyType.SOAK_TIME,
        config: {
          case: "soakTime",
          value: { sourceEnvironment: source, targetEnvironment: target, durationSeconds: BigInt(durationSeconds) },
        },
      });
    },
    async branch(name: string, branchPattern: string, target = "prod") {
      await policies.createPolicy({
        project,
        name,
        policyType: PolicyType.BRANCH_RESTRICTION,
        config: { case: "branchRestriction", value: { targetEnvironment: target, branchPattern } },
      });
    },
    disable: (name: string) => policies.updatePolicy({ project, name, enabled: false }),
    async intent(branch = "") {
      const { releaseIntent } = await releases.registerReleaseIntent({ project, branch, version: "v1" });
      return releaseIntent!.releaseIntentId;
    },
    deploy: (releaseIntentId: string, environment: string, status = DeploymentStatus.SUCCEEDED, finishedAt?: string) =>
      releases.recordDeployment({ project, environment, releaseIntentId, status, finishedAt }),
    evaluate: (req: { branch?: string; releaseIntentId?: string; targetEnvironment?: string } = {}) =>
      server
        .client(PolicyService, pipeline, protocol)
        .evaluatePolicies({ project, targetEnvironment: "prod", ...req }),
  };
}

describe.each(PROTOCOLS)("EvaluatePolicies over %s", (protocol) => {
  it("passes with no policies (all_passed true for none)", async () => {
    const f = fixture(protocol);
    expect(await f.evaluate()).toMatchObject({ evaluations: [], allPassed: true });
  });

  describe("soak time", () => {
    it("passes once the intent has soaked long enough in the source environment", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 1800);
      const id = await f.intent();
      await f.deploy(id, "staging");
      clock.advance(1800);
      const res = await f.evaluate({ releaseIntentId: id });
      expect(res.allPassed).toBe(true);
      expect(res.evaluations).toEqual([
        expect.objectContaining({
          policyName: "soak",
          policyType: PolicyType.SOAK_TIME,
          passed: true,
          reason: "soak time met: 1800s since staging deploy (required 1800s)",
        }),
      ]);
    });

    it("fails with the remaining seconds in the reason", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 1800);
      const id = await f.intent();
      await f.deploy(id, "staging");
      clock.advance(60);
      const res = await f.evaluate({ releaseIntentId: id });
      expect(res.allPassed).toBe(false);
      expect(res.evaluations[0]).toMatchObject({
        passed: false,
        reason: "soak time not met: 1740s remaining after staging deploy",
      });
    });

    it("fails closed when the intent has no deploy to the source environment", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 60);
      const id = await f.intent();
      await f.deploy(id, "qa");
      clock.advance(3600);
      const res = await f.evaluate({ releaseIntentId: id });
      expect(res.allPassed).toBe(false);
      expect(res.evaluations[0]?.reason).toBe(
        `soak time not met: no successful deploy of release ${id} to staging; deploy to staging first and wait 60s`,
      );
    });

    it("fails closed without an intent when the project never deployed", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 60);
      const res = await f.evaluate();
      expect(res.evaluations[0]).toMatchObject({
        passed: false,
        reason: "soak time not met: no successful deploy of this project to staging; deploy to staging first and wait 60s",
      });
    });

    it("ignores failed deployments", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 60);
      const id = await f.intent();
      await f.deploy(id, "staging", DeploymentStatus.FAILED);
      clock.advance(3600);
      expect((await f.evaluate({ releaseIntentId: id })).evaluations[0]?.passed).toBe(false);
      expect((await f.evaluate()).evaluations[0]?.passed).toBe(false);
    });

    it("reads the intent's own deploy when an intent is given, else the project's latest", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 600);
      const old = await f.intent();
      await f.deploy(old, "staging");
      clock.advance(900);
      const fresh = await f.intent();
      await f.deploy(fresh, "staging");
      clock.advance(100);
      // `old` soaked 1000 s, `fresh` only 100 s; the project's latest deploy is `fresh`.
      expect((await f.evaluate({ releaseIntentId: old })).evaluations[0]).toMatchObject({ passed: true });
      expect((await f.evaluate({ releaseIntentId: fresh })).evaluations[0]).toMatchObject({
        passed: false,
        reason: "soak time not met: 500s remaining after staging deploy",
      });
      expect((await f.evaluate()).evaluations[0]).toMatchObject({
        passed: false,
        reason: "soak time not met: 500s remaining after staging deploy",
      });
    });

    it("counts from when releasegate recorded the deploy, not from the finish time the pipeline reports", async () => {
      const f = fixture(protocol);
      await f.soak("soak", 1800);
      const id = await f.intent();
      const registered = clock.now().toISOString();
      clock.advance(3600);
      await f.deploy(id, "staging", DeploymentStatus.SUCCEEDED, registered);
      expect((await f.evaluate({ releaseIntentId: id })).evaluations[0]).toMatchObject({
        passed: false,
        reason: "soak time not met: 1800s remaining after staging deploy",
      });
      clock.advance(1800);
      expect((await f.evaluate({ releaseIntentId: id })).evaluations[0]).toMatchObject({
        passed: true,
        reason: "soak time met: 1800s since staging deploy (required 1800s)",
      });
    });

    it("does not count another project's deploys", async () => {
      const a = fixture(protocol);
      const b = fixture(protocol);
      await b.soak("soak", 60);
      const id = await a.intent();
      await a.deploy(id, "staging");
      clock.advance(3600);
      expect((await b.evaluate()).evaluations[0]?.passed).toBe(false);
    });
  });

  describe("branch restriction", () => {
    it("passes when the request's branch matches", async () => {
      const f = fixture(protocol);
      await f.branch("main-only", "^main$");
      const res = await f.evaluate({ branch: "main" });
      expect(res.allPassed).toBe(true);
      expect(res.evaluations[0]).toMatchObject({
        policyName: "main-only",
        policyType: PolicyType.BRANCH_RESTRICTION,
        passed: true,
        reason: "branch main matches ^main$",
      });
    });

    it("fails when the branch does not match", async () => {
      const f = fixture(protocol);
      await f.branch("main-only", "^main$");
      const res = await f.evaluate({ branch: "feature/login" });
      expect(res.allPassed).toBe(false);
      expect(res.evaluations[0]?.reason).toBe("branch feature/login does not match required pattern ^main$");
    });

    it("fails closed when the branch is unknown", async () => {
      const f = fixture(protocol);
      await f.branch("main-only", "^main$");
      const id = await f.intent("");
      for (const res of [await f.evaluate(), await f.evaluate({ releaseIntentId: id, branch: "" })]) {
        expect(res.allPassed).toBe(false);
        expect(res.evaluations[0]?.reason).toBe(
          "branch unknown: pass branch or register the release intent with its branch (required pattern ^main$)",
        );
      }
    });

    it("falls back to the branch registered with the intent", async () => {
      const f = fixture(protocol);
      await f.branch("release-only", "^release/");
      const good = await f.intent("release/2026.04");
      const bad = await f.intent("feature/x");
      expect((await f.evaluate({ releaseIntentId: good })).evaluations[0]).toMatchObject({
        passed: true,
        reason: "branch release/2026.04 matches ^release/",
      });
      expect((await f.evaluate({ releaseIntentId: bad })).evaluations[0]?.passed).toBe(false);
    });

    it("holds the intent's branch against a differing request branch, even one the pattern would match", async () => {
      const f = fixture(protocol);
      await f.branch("release-only", "^release/");
      const id = await f.intent("feature/x");
      expect((await f.evaluate({ releaseIntentId: id, branch: "release/1" })).evaluations[0]).toMatchObject({
        passed: false,
        reason: `request branch release/1 differs from release intent ${id}'s branch feature/x; the intent's branch is what counts`,
      });
    });
  });

  describe("which policies apply", () => {
    it("ignores disabled policies and other environments, evaluating the rest in name order", async () => {
      const f = fixture(protocol);
      await f.branch("zz-branch", "^main$");
      await f.soak("aa-soak", 60);
      await f.branch("mm-off", "^never$");
      await f.disable("mm-off");
      await f.branch("staging-only", "^never$", "staging");
      await f.soak("qa-soak", 60, "dev", "qa");
      const id = await f.intent("main");
      await f.deploy(id, "staging");
      clock.advance(61);
      const res = await f.evaluate({ releaseIntentId: id });
      expect(res.evaluations.map((e) => [e.policyName, e.passed])).toEqual([
        ["aa-soak", true],
        ["zz-branch", true],
      ]);
      expect(res.allPassed).toBe(true);
      const staging = await f.evaluate({ releaseIntentId: id, targetEnvironment: "staging" });
      expect(staging.evaluations.map((e) => e.policyName)).toEqual(["staging-only"]);
      expect(staging.allPassed).toBe(false);
    });

    it("fails all_passed when any one policy fails", async () => {
      const f = fixture(protocol);
      await f.branch("a-branch", "^main$");
      await f.soak("b-soak", 60);
      const res = await f.evaluate({ branch: "main" });
      expect(res.evaluations.map((e) => e.passed)).toEqual([true, false]);
      expect(res.allPassed).toBe(false);
    });

    it("re-evaluates a policy that was re-enabled", async () => {
      const f = fixture(protocol);
      await f.branch("gate", "^main$");
      await f.disable("gate");
      expect((await f.evaluate({ branch: "dev" })).allPassed).toBe(true);
      await server
        .client(PolicyService, admin, protocol)
        .updatePolicy({ project: f.project, name: "gate", enabled: true });
      expect((await f.evaluate({ branch: "dev" })).allPassed).toBe(false);
    });
  });
});
