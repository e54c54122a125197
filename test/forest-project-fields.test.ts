import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalRequestService } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { type Cast, cast } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { AUTHENTICATED_SERVICES, callMethod, methodPath } from "./support/rpc-catalog.js";
import { PROTOCOLS, startTestServer, type TestServer } from "./support/server.js";

// Forest clients send `Project` as Forest defines it: readme = 3,
// description = 4, metadata = 5 (ProjectMetadata 1-6). Every RPC accepts
// them, in binary (gRPC) and in JSON (Connect), and answers as it would
// without them; they are not stored.

let server: TestServer;
let t: Cast;

const metadata = {
  gitUrl: "https://git.example.com/acme/web",
  homepage: "https://web.example.com",
  docsUrl: "https://docs.example.com/web",
  supportUrl: "https://chat.example.com/web",
  domain: "payments",
  owner: "team-web",
};
const withForestFields = (p: { organisation: string; project: string }) => ({
  ...p,
  readme: `# ${p.project}\n\n${"Long README. ".repeat(200)}`,
  description: "Storefront web app",
  metadata,
});

beforeAll(async () => {
  server = await startTestServer();
  t = await cast();
});
afterAll(() => server?.stop());

/** Methods whose request has a top-level `project` of type forest.v1.Project. */
const PROJECT_METHODS: DescMethod[] = [
  ...new Map([...AUTHENTICATED_SERVICES, ApprovalRequestService].map((s) => [s.typeName, s])).values(),
]
  .flatMap((s) => s.methods)
  .filter((m) => m.input.fields.some((f) => f.name === "project" && f.message?.typeName === "forest.v1.Project"));

describe.each(PROTOCOLS)("Forest Project fields 3-5 over %s", (protocol) => {
  const transport = () => (protocol === "grpc" ? server.grpc(t.ada) : server.connect(t.ada));

  it("covers the RPCs that take a project", () => {
    expect(PROJECT_METHODS.map(methodPath)).toEqual(
      expect.arrayContaining([
        "forest.v1.PolicyService/CreatePolicy",
        "forest.v1.PolicyService/EvaluatePolicies",
        "forest.v1.PolicyService/ExternalApproveRelease",
        "forest.v1.PolicyService/ApproveRelease",
        "releasegate.v1.ReleaseService/RegisterReleaseIntent",
        "releasegate.v1.ApprovalRequestService/RequestApproval",
      ]),
    );
  });

  it("every RPC answers the same with and without readme, description and metadata", async () => {
    const bare = { organisation: "acme", project: `fields-${protocol}-generic` };
    const outcomes: string[] = [];
    for (const method of PROJECT_METHODS) {
      const plain = await callMethod(transport(), method, { project: bare });
      const forest = await callMethod(transport(), method, { project: withForestFields(bare) });
      expect(forest, methodPath(method)).toEqual(plain);
      outcomes.push(String(forest.code));
    }
    // Past decoding: some succeed outright, the rest stop at their own validation of other fields.
    expect(outcomes).toContain("ok");
  });

  it("a release goes through create, register, approve, evaluate and deploy with them, and they are not stored", async () => {
    const bare = { organisation: "acme", project: `fields-${protocol}-${randomUUID().slice(0, 6)}` };
    const project = withForestFields(bare);
    const policies = (tok: string) => server.client(PolicyService, tok, protocol);
    const created = await policies(t.ada).createPolicy({
      project,
      name: "one-approval",
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
    });
    expect(created.policy?.name).toBe("one-approval");
    const id = randomUUID();
    const registered = await server
      .client(ReleaseService, t.pipeline, protocol)
      .registerReleaseIntent({ project, releaseIntentId: id, authorUserId: "alice", branch: "main" });
    // Echoed as stored: organisation and project only.
    expect(registered.releaseIntent?.project).toMatchObject({ ...bare, readme: "", description: "" });
    expect(registered.releaseIntent?.project?.metadata).toBeUndefined();
    const at = { project, releaseIntentId: id, targetEnvironment: "prod" };
    await server.client(ApprovalRequestService, t.pipeline, protocol).requestApproval(at);
    const approved = await policies(t.bob).approveRelease(at);
    expect(approved.state?.currentApprovals).toBe(1);
    expect((await policies(t.carol).getExternalApprovalState(at)).state?.currentApprovals).toBe(1);
    const evaluated = await policies(t.pipeline).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: id });
    expect(evaluated.allPassed).toBe(true);
    await server
      .client(ReleaseService, t.pipeline, protocol)
      .recordDeployment({ project, environment: "prod", releaseIntentId: id, status: DeploymentStatus.SUCCEEDED });
    const { entries } = await server
      .client(ApprovalAuditService, t.ada, protocol)
      .listApprovalHistory({ project, releaseIntentId: id });
    expect(entries.some((e) => e.userId === "bob" && e.decision === "approved")).toBe(true);
    const listed = await policies(t.ada).listPolicies({ project });
    expect(listed.policies.map((p) => p.name)).toEqual(["one-approval"]);
  });
});

describe(`Forest Project fields in hand-written JSON on ${testDatabaseKind()}`, () => {
  it("accepts Forest's proto field names (git_url, docs_url, …) over plain HTTP/1.1 JSON", async () => {
    const project = {
      organisation: "acme",
      project: "fields-raw-json",
      readme: "# web",
      description: "Storefront",
      metadata: {
        git_url: "https://git.example.com/acme/web",
        homepage: "https://web.example.com",
        docs_url: "https://docs.example.com",
        support_url: "https://chat.example.com",
        domain: "payments",
        owner: "team-web",
      },
    };
    const post = (method: string, body: unknown) =>
      fetch(`${server.baseUrl}/forest.v1.PolicyService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${t.ada}` },
        body: JSON.stringify(body),
      });
    const created = await post("CreatePolicy", {
      project,
      name: "one-pending",
      policy_type: "POLICY_TYPE_SUPERSEDE_PENDING",
      supersede_pending: { target_environment: "prod", same_branch_only: true },
    });
    expect(created.status).toBe(200);
    expect(await created.json()).toMatchObject({
      policy: {
        name: "one-pending",
        policyType: "POLICY_TYPE_SUPERSEDE_PENDING",
        supersedePending: { targetEnvironment: "prod", sameBranchOnly: true },
      },
    });
    const evaluated = await post("EvaluatePolicies", { project, target_environment: "prod" });
    expect(evaluated.status).toBe(200);
    expect(await evaluated.json()).toMatchObject({
      evaluations: [{ policyName: "one-pending", policyType: "POLICY_TYPE_SUPERSEDE_PENDING", passed: true }],
      allPassed: true,
    });
  });
});
