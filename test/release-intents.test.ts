import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { ManualClock, PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const clock = new ManualClock(Date.parse("2026-05-06T07:08:09Z"));
let server: TestServer;
let pipeline: string;
let member: string;
let admin: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  pipeline = await token({ sub: "ci-bot", name: "CI", orgs: { acme: "member" }, service: true });
  member = await token({ sub: "mia", name: "Mia", orgs: { acme: "member" } });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(() => server?.stop());

let seq = 0;
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

describe.each(PROTOCOLS)("RegisterReleaseIntent over %s", (protocol) => {
  const project = { organisation: "acme", project: `intents-${protocol}` };
  const releases = (tok = pipeline) => server.client(ReleaseService, tok, protocol);
  const base = protocol === "grpc" ? 1000 : 2000;

  it("generates a UUID when release_intent_id is empty, defaulting the author to the caller", async () => {
    const res = await releases(member).registerReleaseIntent({ project, branch: "main", version: "api@1.2.3" });
    expect(res.created).toBe(true);
    expect(res.releaseIntent?.releaseIntentId).toMatch(UUID);
    expect(res.releaseIntent).toMatchObject({
      project,
      authorUserId: "mia",
      authorUsername: "Mia",
      branch: "main",
      version: "api@1.2.3",
      createdAt: clock.now().toISOString(),
    });
  });

  it("generates a different id for every empty-id registration", async () => {
    const a = await releases().registerReleaseIntent({ project, version: "x" });
    const b = await releases().registerReleaseIntent({ project, version: "x" });
    expect(a.releaseIntent?.releaseIntentId).not.toBe(b.releaseIntent?.releaseIntentId);
  });

  it("is idempotent for the same id and content, returning the original", async () => {
    const req = { project, releaseIntentId: uuid(base + 1), authorUserId: "alice", branch: "main", version: "1" };
    const first = await releases().registerReleaseIntent(req);
    clock.advance(30);
    const again = await releases().registerReleaseIntent(req);
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.releaseIntent).toEqual(first.releaseIntent);
    expect(again.releaseIntent?.authorUsername).toBe("alice");
  });

  it("normalises an uppercase UUID so it names the same intent", async () => {
    const id = uuid(base + 2);
    await releases().registerReleaseIntent({ project, releaseIntentId: id, version: "1" });
    const again = await releases().registerReleaseIntent({ project, releaseIntentId: id.toUpperCase(), version: "1" });
    expect(again).toMatchObject({ created: false, releaseIntent: { releaseIntentId: id } });
  });

  it("rejects a conflicting re-registration with ALREADY_EXISTS", async () => {
    const id = uuid(base + 3);
    await releases().registerReleaseIntent({ project, releaseIntentId: id, branch: "main", version: "1" });
    await expectRpcError(
      releases().registerReleaseIntent({ project, releaseIntentId: id, branch: "main", version: "2" }),
      Code.AlreadyExists,
      `release intent ${id} is already registered with different content`,
    );
  });

  it("rejects reusing an id registered in another project", async () => {
    const id = uuid(base + 4);
    await releases().registerReleaseIntent({ project, releaseIntentId: id, version: "1" });
    await expectRpcError(
      releases().registerReleaseIntent({ project: { ...project, project: "other" }, releaseIntentId: id, version: "1" }),
      Code.AlreadyExists,
      `release intent ${id} is already registered with different content`,
    );
  });

  it("rejects a malformed UUID", async () => {
    await expectRpcError(
      releases().registerReleaseIntent({ project, releaseIntentId: "build-42" }),
      Code.InvalidArgument,
      "release_intent_id: must be a UUID",
    );
  });

  it("rejects over-long labels, naming the field", async () => {
    await expectRpcError(
      releases().registerReleaseIntent({ project, branch: "b".repeat(257) }),
      Code.InvalidArgument,
      "branch: must be at most 256 characters",
    );
    await expectRpcError(
      releases().registerReleaseIntent({ project, version: "v".repeat(257) }),
      Code.InvalidArgument,
      "version: must be at most 256 characters",
    );
  });

  it("requires the project", async () => {
    await expectRpcError(
      releases().registerReleaseIntent({ project: { organisation: "acme", project: "" } }),
      Code.InvalidArgument,
      "project.project: is required",
    );
  });

  it("lets pipelines and admins name another author", async () => {
    const viaAdmin = await releases(admin).registerReleaseIntent({ project, authorUserId: "bob", authorUsername: "Bob" });
    expect(viaAdmin.releaseIntent).toMatchObject({ authorUserId: "bob", authorUsername: "Bob" });
    const viaPipeline = await releases(pipeline).registerReleaseIntent({ project, authorUserId: "bob" });
    expect(viaPipeline.releaseIntent).toMatchObject({ authorUserId: "bob", authorUsername: "bob" });
  });

  it("does not let a member register an intent as someone else (four-eyes)", async () => {
    await expectRpcError(
      releases(member).registerReleaseIntent({ project, authorUserId: "bob" }),
      Code.PermissionDenied,
      "author_user_id: member mia may register release intents only as themselves (service accounts and admins may name another author)",
    );
    const self = await releases(member).registerReleaseIntent({ project, authorUserId: "mia" });
    expect(self.releaseIntent?.authorUserId).toBe("mia");
  });

  it("names the caller's username whether the caller's id is given or left empty", async () => {
    const id = uuid(base + 6);
    const explicit = await releases(member).registerReleaseIntent({ project, releaseIntentId: id, authorUserId: "mia" });
    expect(explicit.releaseIntent).toMatchObject({ authorUserId: "mia", authorUsername: "Mia" });
    const implicit = await releases(member).registerReleaseIntent({ project, releaseIntentId: id });
    expect(implicit).toMatchObject({ created: false, releaseIntent: { authorUsername: "Mia" } });
  });

  it("GetReleaseIntent returns it within its project and NOT_FOUND elsewhere", async () => {
    const id = uuid(base + 5);
    await releases().registerReleaseIntent({ project, releaseIntentId: id, branch: "main" });
    const got = await releases(member).getReleaseIntent({ project, releaseIntentId: id });
    expect(got.releaseIntent).toMatchObject({ releaseIntentId: id, branch: "main" });
    await expectRpcError(
      releases(member).getReleaseIntent({ project: { ...project, project: "other" }, releaseIntentId: id }),
      Code.NotFound,
      `release_intent_id: release intent ${id} not found in acme/other`,
    );
    await expectRpcError(
      releases(member).getReleaseIntent({ project, releaseIntentId: "nope" }),
      Code.InvalidArgument,
      "release_intent_id: must be a UUID",
    );
  });
});

describe.each(PROTOCOLS)("RecordDeployment over %s", (protocol) => {
  const project = { organisation: "acme", project: `deploys-${protocol}` };
  const releases = () => server.client(ReleaseService, pipeline, protocol);
  let intent: string;

  beforeAll(async () => {
    const res = await releases().registerReleaseIntent({ project, branch: "main", version: `${++seq}` });
    intent = res.releaseIntent!.releaseIntentId;
  });

  const record = (over: { environment?: string; releaseIntentId?: string; status?: DeploymentStatus; finishedAt?: string }) =>
    releases().recordDeployment({
      project,
      environment: "staging",
      releaseIntentId: intent,
      status: DeploymentStatus.SUCCEEDED,
      ...over,
    });

  it("records a deployment finished now by default", async () => {
    const { deployment } = await record({});
    expect(deployment).toMatchObject({
      project,
      environment: "staging",
      releaseIntentId: intent,
      status: DeploymentStatus.SUCCEEDED,
      finishedAt: clock.now().toISOString(),
    });
    expect(deployment?.id).toMatch(/^\d+$/);
  });

  it("records a failed deployment with an explicit finish time (any offset), and when it was recorded", async () => {
    const now = clock.now();
    // The same instant as now, written in +01:00.
    const inParis = new Date(now.getTime() + 3600_000).toISOString().replace(/\.\d{3}Z$/, "+01:00");
    const { deployment } = await record({ status: DeploymentStatus.FAILED, finishedAt: inParis });
    expect(deployment).toMatchObject({
      status: DeploymentStatus.FAILED,
      finishedAt: now.toISOString(),
      recordedAt: now.toISOString(),
    });
  });

  it("requires the environment", async () => {
    await expectRpcError(record({ environment: "" }), Code.InvalidArgument, "environment: is required");
  });

  it("requires a status", async () => {
    await expectRpcError(
      record({ status: DeploymentStatus.UNSPECIFIED }),
      Code.InvalidArgument,
      "status: must be DEPLOYMENT_STATUS_SUCCEEDED or DEPLOYMENT_STATUS_FAILED",
    );
  });

  it("rejects a malformed or unknown release intent", async () => {
    await expectRpcError(record({ releaseIntentId: "" }), Code.InvalidArgument, "release_intent_id: is required");
    await expectRpcError(record({ releaseIntentId: "abc" }), Code.InvalidArgument, "release_intent_id: must be a UUID");
    const unknown = uuid(9999);
    await expectRpcError(
      record({ releaseIntentId: unknown }),
      Code.NotFound,
      `release_intent_id: release intent ${unknown} not found in acme/${project.project}`,
    );
  });

  it("rejects a finish time that is not RFC 3339", async () => {
    for (const finishedAt of ["yesterday", "2026-05-06", "2026-05-06 07:00:00", "2026-13-01T00:00:00Z"])
      await expectRpcError(
        record({ finishedAt }),
        Code.InvalidArgument,
        "finished_at: must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z",
      );
  });

  it("rejects a finish time in the future, beyond a minute of skew", async () => {
    const skewed = new Date(clock.now().getTime() + 30_000).toISOString();
    await expect(record({ finishedAt: skewed })).resolves.toBeDefined();
    const future = new Date(clock.now().getTime() + 120_000).toISOString();
    await expectRpcError(record({ finishedAt: future }), Code.InvalidArgument, "finished_at: must not be more than 60s in the future");
  });
});
