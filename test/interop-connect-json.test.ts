import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// The Connect protocol as a pipeline speaks it: a JSON POST over HTTP/1.1 with
// global fetch, and with the curl the README shows.

const run = promisify(execFile);
const project = { organisation: "acme", project: "connect-json" };
let server: TestServer;
let pipeline: string;
let intentId: string;

beforeAll(async () => {
  server = await startTestServer();
  const admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  pipeline = await token({ sub: "ci", orgs: { acme: "member" }, service: true });
  await server.client(PolicyService, admin).createPolicy({
    project,
    name: "main-only",
    policyType: PolicyType.BRANCH_RESTRICTION,
    config: { case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern: "^main$" } },
  });
  const { releaseIntent } = await server
    .client(ReleaseService, pipeline)
    .registerReleaseIntent({ project, branch: "main", version: "1.0.0" });
  intentId = releaseIntent!.releaseIntentId;
});
afterAll(() => server?.stop());

const url = (method: string) => `${server.baseUrl}/forest.v1.PolicyService/${method}`;

function post(method: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url(method), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${pipeline}`, ...headers },
    body: JSON.stringify(body),
  });
}

describe("Connect JSON via fetch (HTTP/1.1)", () => {
  it("evaluates policies", async () => {
    const res = await post("EvaluatePolicies", { project, targetEnvironment: "prod", branch: "main" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({
      evaluations: [
        {
          policyName: "main-only",
          policyType: "POLICY_TYPE_BRANCH_RESTRICTION",
          passed: true,
          reason: "branch main matches ^main$",
        },
      ],
      allPassed: true,
    });
  });

  it("spells out false results instead of omitting them", async () => {
    const res = await post("EvaluatePolicies", { project, targetEnvironment: "prod", branch: "dev" });
    const body = (await res.json()) as { allPassed: boolean; evaluations: { passed: boolean }[] };
    expect(body.allPassed).toBe(false);
    expect(body.evaluations[0]?.passed).toBe(false);
  });

  it("accepts proto field names (snake_case) as well as JSON names", async () => {
    const res = await post("EvaluatePolicies", {
      project,
      target_environment: "prod",
      release_intent_id: intentId,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ allPassed: true });
  });

  it("answers 401 with a Connect error body without a token", async () => {
    const res = await fetch(url("ListPolicies"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ project }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      code: "unauthenticated",
      message: "missing authorization header (Bearer token)",
    });
  });

  it("answers 400 invalid_argument naming the field", async () => {
    const res = await post("EvaluatePolicies", { project });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: "invalid_argument", message: "target_environment: is required" });
  });

  it("answers 403 permission_denied to a member writing policies", async () => {
    const member = await token({ sub: "mia", orgs: { acme: "member" } });
    const res = await post("DeletePolicy", { project, name: "main-only" }, { authorization: `Bearer ${member}` });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      code: "permission_denied",
      message: "member mia may not policy.write in organisation acme",
    });
  });

  it("rejects JSON that does not fit the schema as invalid_argument", async () => {
    const res = await post("EvaluatePolicies", { project, targetEnvironment: 42 });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "invalid_argument" });
  });
});

describe("curl", () => {
  async function curl(...args: string[]) {
    const { stdout } = await run("curl", ["-sS", "-w", "\\n%{http_code} %{http_version}", ...args]);
    const lines = stdout.trimEnd().split("\n");
    const [status, version] = lines.pop()!.split(" ");
    return { status: Number(status), version, body: JSON.parse(lines.join("\n")) as unknown };
  }

  it("calls EvaluatePolicies with plain curl over HTTP/1.1, as the README shows", async () => {
    const res = await curl(
      url("EvaluatePolicies"),
      "-H",
      "Content-Type: application/json",
      "-H",
      `Authorization: Bearer ${pipeline}`,
      "-d",
      JSON.stringify({ project, targetEnvironment: "prod", releaseIntentId: intentId }),
    );
    expect(res).toMatchObject({ status: 200, version: "1.1", body: { allPassed: true } });
  });

  it("calls it over HTTP/2 with prior knowledge on the same port", async () => {
    const res = await curl(
      "--http2-prior-knowledge",
      url("EvaluatePolicies"),
      "-H",
      "Content-Type: application/json",
      "-H",
      `Authorization: Bearer ${pipeline}`,
      "-d",
      JSON.stringify({ project, targetEnvironment: "prod", branch: "main" }),
    );
    expect(res).toMatchObject({ status: 200, version: "2", body: { allPassed: true } });
  });
});
