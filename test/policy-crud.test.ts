import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "web" };
let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(() => server?.stop());

describe("policy CRUD smoke", () => {
  it("creates and lists a soak policy over gRPC", async () => {
    const client = server.client(PolicyService, admin);
    await client.createPolicy({
      project,
      name: "soak-staging",
      policyType: PolicyType.SOAK_TIME,
      config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60n } },
    });
    const { policies } = await client.listPolicies({ project });
    expect(policies.map((p) => p.name)).toEqual(["soak-staging"]);
  });

  it("rejects a duplicate name with ALREADY_EXISTS", async () => {
    const client = server.client(PolicyService, admin);
    const err = await client
      .createPolicy({
        project,
        name: "soak-staging",
        policyType: PolicyType.SOAK_TIME,
        config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60n } },
      })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.AlreadyExists);
    expect((err as ConnectError).rawMessage).toContain("soak-staging");
  });
});
