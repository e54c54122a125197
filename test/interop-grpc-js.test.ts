import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer, token } from "./support/server.js";

// An independent client: plain @grpc/grpc-js with @grpc/proto-loader reading
// only proto/ (no generated code of ours), as an existing Forest client would.

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
// biome-ignore lint/suspicious/noExplicitAny: dynamic grpc-js client, typed at the call sites
type Dynamic = grpc.Client & Record<string, (req: unknown, md: grpc.Metadata, cb: Callback<any>) => void>;

const LOADER_OPTIONS: protoLoader.Options = {
  includeDirs: ["proto"],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let server: TestServer;
let policies: Dynamic;
let releases: Dynamic;
let admin: string;
let pipeline: string;
const project = { organisation: "acme", project: "interop" };

function call<T>(client: Dynamic, method: string, req: unknown, tok?: string): Promise<T> {
  const md = new grpc.Metadata();
  if (tok !== undefined) md.set("authorization", `Bearer ${tok}`);
  return new Promise((resolve, reject) => {
    client[method]!(req, md, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  pipeline = await token({ sub: "ci", orgs: { acme: "member" }, service: true });
  const definition = await protoLoader.load(["forest/v1/policy.proto", "releasegate/v1/release.proto"], LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    forest: { v1: { PolicyService: grpc.ServiceClientConstructor } };
    releasegate: { v1: { ReleaseService: grpc.ServiceClientConstructor } };
  };
  const address = server.baseUrl.replace("http://", "");
  policies = new loaded.forest.v1.PolicyService(address, grpc.credentials.createInsecure()) as Dynamic;
  releases = new loaded.releasegate.v1.ReleaseService(address, grpc.credentials.createInsecure()) as Dynamic;
});
afterAll(async () => {
  policies?.close();
  releases?.close();
  await server?.stop();
});

describe("grpc-js client loading proto/", () => {
  it("creates a policy and lists it with metadata authorization", async () => {
    const created = await call<{ policy: { name: string; policyType: string; soakTime: { durationSeconds: string } } }>(
      policies,
      "CreatePolicy",
      {
        project,
        name: "soak-staging",
        policyType: "POLICY_TYPE_SOAK_TIME",
        soakTime: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: "1800" },
      },
      admin,
    );
    expect(created.policy).toMatchObject({
      name: "soak-staging",
      policyType: "POLICY_TYPE_SOAK_TIME",
      soakTime: { durationSeconds: "1800" },
    });
    const listed = await call<{ policies: { name: string; enabled: boolean; config: string }[] }>(
      policies,
      "ListPolicies",
      { project },
      admin,
    );
    expect(listed.policies.map((p) => [p.name, p.enabled, p.config])).toEqual([["soak-staging", true, "soakTime"]]);
  });

  it("evaluates policies for a registered release intent", async () => {
    const { releaseIntent } = await call<{ releaseIntent: { releaseIntentId: string } }>(
      releases,
      "RegisterReleaseIntent",
      { project, branch: "main", version: "1.0.0" },
      pipeline,
    );
    const res = await call<{ allPassed: boolean; evaluations: { policyName: string; passed: boolean; reason: string }[] }>(
      policies,
      "EvaluatePolicies",
      { project, targetEnvironment: "prod", releaseIntentId: releaseIntent.releaseIntentId },
      pipeline,
    );
    expect(res.allPassed).toBe(false);
    expect(res.evaluations).toEqual([
      expect.objectContaining({
        policyName: "soak-staging",
        policyType: "POLICY_TYPE_SOAK_TIME",
        passed: false,
        reason: `soak time not met: no successful deploy of release ${releaseIntent.releaseIntentId} to staging; deploy to staging first and wait 1800s`,
      }),
    ]);
  });

  it("gets UNAUTHENTICATED without metadata", async () => {
    await expect(call(policies, "ListPolicies", { project })).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: "missing authorization header (Bearer token)",
    });
  });

  it("gets INVALID_ARGUMENT naming the field", async () => {
    await expect(call(policies, "EvaluatePolicies", { project }, pipeline)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: "target_environment: is required",
    });
  });

  it("gets PERMISSION_DENIED for a member writing policies", async () => {
    const member = await token({ sub: "mia", orgs: { acme: "member" } });
    await expect(call(policies, "DeletePolicy", { project, name: "soak-staging" }, member)).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: "member mia may not policy.write in organisation acme",
    });
  });

  it("reads messages with '/', '%' and non-ASCII as written", async () => {
    const odd = { organisation: "acme", project: "ünï/100%" };
    await expect(call(policies, "DeletePolicy", { project: odd, name: "gone" }, admin)).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: "policy gone not found in acme/ünï/100%",
    });
  });

  it("keeps a message that ends in a space (header whitespace is trimmed)", async () => {
    const odd = { organisation: "acme", project: "web " };
    await expect(call(policies, "DeletePolicy", { project: odd, name: "gone" }, admin)).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: "policy gone not found in acme/web ",
    });
  });

  it("finds every Forest RPC declared in proto/", async () => {
    const definition = await protoLoader.load("forest/v1/policy.proto", LOADER_OPTIONS);
    const service = definition["forest.v1.PolicyService"] as protoLoader.ServiceDefinition;
    expect(Object.keys(service)).toEqual(
      expect.arrayContaining([
        "CreatePolicy",
        "UpdatePolicy",
        "DeletePolicy",
        "ListPolicies",
        "EvaluatePolicies",
        "ExternalApproveRelease",
        "ExternalRejectRelease",
        "GetExternalApprovalState",
      ]),
    );
  });
});
