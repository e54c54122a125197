import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CreatePolicyRequest, type CreatePolicyRequestSchema, PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

// Every CreatePolicy/UpdatePolicy/DeletePolicy validation rule, over gRPC and
// over Connect JSON: INVALID_ARGUMENT naming the field, never INTERNAL.

// The plain-object form of the request (not a constructed message).
type CreateInit = Exclude<MessageInitShape<typeof CreatePolicyRequestSchema>, CreatePolicyRequest>;

const project = { organisation: "acme", project: "validation" };
const soakConfig = (over: { sourceEnvironment?: string; targetEnvironment?: string; durationSeconds?: bigint } = {}) =>
  ({
    case: "soakTime",
    value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60n, ...over },
  }) as const;
const branchConfig = (branchPattern: string) =>
  ({ case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern } }) as const;
const approvalConfig = (requiredApprovals: number) =>
  ({ case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals } }) as const;

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(() => server?.stop());

describe.each(PROTOCOLS)("CreatePolicy validation over %s", (protocol) => {
  const create = (req: CreateInit) =>
    server.client(PolicyService, admin, protocol).createPolicy({
      project,
      name: "p",
      policyType: PolicyType.SOAK_TIME,
      config: soakConfig(),
      ...req,
    });
  const invalid = (req: CreateInit, message: string | RegExp) =>
    expectRpcError(create(req), Code.InvalidArgument, message);

  it("requires the project", async () => {
    await invalid({ project: undefined }, "project: is required");
  });

  it("requires the organisation", async () => {
    await invalid({ project: { organisation: "", project: "web" } }, "project.organisation: is required");
  });

  it("requires the project name", async () => {
    await invalid({ project: { organisation: "acme", project: "" } }, "project.project: is required");
  });

  it("requires a policy name", async () => {
    await invalid({ name: "" }, "name: is required");
  });

  it("rejects uppercase and other characters outside [a-z0-9-]", async () => {
    for (const name of ["Soak", "soak_time", "soak time", "soak.time"])
      await invalid({ name }, "name: may contain only lowercase letters, digits and '-'");
  });

  it("rejects a name longer than 63 characters", async () => {
    await invalid({ name: "a".repeat(64) }, "name: must be at most 63 characters");
  });

  it("requires a config", async () => {
    await invalid(
      { config: { case: undefined } },
      "config: is required: set one of soak_time, branch_restriction, external_approval, supersede_pending",
    );
  });

  it("requires policy_type", async () => {
    await invalid(
      { policyType: PolicyType.UNSPECIFIED },
      "policy_type: is required: config is soak_time, so policy_type must be POLICY_TYPE_SOAK_TIME",
    );
  });

  it("rejects a policy_type that does not match the config", async () => {
    await invalid(
      { policyType: PolicyType.BRANCH_RESTRICTION },
      "policy_type: POLICY_TYPE_BRANCH_RESTRICTION does not match: config is soak_time, so policy_type must be POLICY_TYPE_SOAK_TIME",
    );
    await invalid(
      { policyType: PolicyType.SOAK_TIME, config: approvalConfig(1) },
      "policy_type: POLICY_TYPE_SOAK_TIME does not match: config is external_approval, so policy_type must be POLICY_TYPE_EXTERNAL_APPROVAL",
    );
  });

  it("requires the soak environments", async () => {
    await invalid({ config: soakConfig({ sourceEnvironment: "" }) }, "soak_time.source_environment: is required");
    await invalid({ config: soakConfig({ targetEnvironment: "" }) }, "soak_time.target_environment: is required");
  });

  it("requires the branch and approval target environments", async () => {
    await invalid(
      {
        policyType: PolicyType.BRANCH_RESTRICTION,
        config: { case: "branchRestriction", value: { targetEnvironment: "", branchPattern: "^main$" } },
      },
      "branch_restriction.target_environment: is required",
    );
    await invalid(
      {
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval", value: { targetEnvironment: " ", requiredApprovals: 1 } },
      },
      `external_approval.target_environment: " " is not a valid environment name: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit (names are case-insensitive)`,
    );
  });

  it("rejects a soak duration of zero or less", async () => {
    for (const durationSeconds of [0n, -1n, -(2n ** 63n)])
      await invalid({ config: soakConfig({ durationSeconds }) }, "soak_time.duration_seconds: must be greater than 0");
  });

  it("rejects an absurd soak duration", async () => {
    for (const durationSeconds of [315_360_001n, 2n ** 63n - 1n])
      await invalid(
        { config: soakConfig({ durationSeconds }) },
        "soak_time.duration_seconds: must be at most 315360000 (10 years)",
      );
  });

  it("rejects required_approvals 0 and 101", async () => {
    for (const n of [0, 101, -3])
      await invalid(
        { policyType: PolicyType.EXTERNAL_APPROVAL, config: approvalConfig(n) },
        "external_approval.required_approvals: must be between 1 and 100",
      );
  });

  it("rejects a branch pattern that does not compile", async () => {
    await invalid(
      { policyType: PolicyType.BRANCH_RESTRICTION, config: branchConfig("release/(") },
      /^branch_restriction\.branch_pattern: not a valid RE2 pattern/,
    );
  });

  it("rejects lookahead (not RE2)", async () => {
    await invalid(
      { policyType: PolicyType.BRANCH_RESTRICTION, config: branchConfig("^(?!main).*$") },
      /^branch_restriction\.branch_pattern: not a valid RE2 pattern/,
    );
  });

  it("rejects a branch pattern longer than 256 characters", async () => {
    await invalid(
      { policyType: PolicyType.BRANCH_RESTRICTION, config: branchConfig(`^${"a".repeat(256)}$`) },
      "branch_restriction.branch_pattern: must be at most 256 characters",
    );
  });

  it("rejects an empty branch pattern", async () => {
    await invalid(
      { policyType: PolicyType.BRANCH_RESTRICTION, config: branchConfig("") },
      "branch_restriction.branch_pattern: must not be empty",
    );
  });

  it("stores nothing for a rejected request", async () => {
    const { policies } = await server.client(PolicyService, admin, protocol).listPolicies({ project });
    expect(policies).toEqual([]);
  });
});

describe.each(PROTOCOLS)("UpdatePolicy and DeletePolicy validation over %s", (protocol) => {
  const other = { organisation: "acme", project: `update-${protocol}` };
  const client = () => server.client(PolicyService, admin, protocol);

  beforeAll(async () => {
    await client().createPolicy({
      project: other,
      name: "gate",
      policyType: PolicyType.SOAK_TIME,
      config: soakConfig(),
    });
  });

  it("validates a replacement config", async () => {
    await expectRpcError(
      client().updatePolicy({ project: other, name: "gate", config: soakConfig({ durationSeconds: 0n }) }),
      Code.InvalidArgument,
      "soak_time.duration_seconds: must be greater than 0",
    );
    await expectRpcError(
      client().updatePolicy({ project: other, name: "gate", config: branchConfig("(?=x)") }),
      Code.InvalidArgument,
      /^branch_restriction\.branch_pattern: not a valid RE2 pattern/,
    );
  });

  it("validates the name and project", async () => {
    await expectRpcError(
      client().updatePolicy({ project: other, name: "Gate", enabled: false }),
      Code.InvalidArgument,
      "name: may contain only lowercase letters, digits and '-'",
    );
    await expectRpcError(
      client().deletePolicy({ project: { organisation: "acme", project: "" }, name: "gate" }),
      Code.InvalidArgument,
      "project.project: is required",
    );
  });

  it("answers NOT_FOUND for an unknown policy", async () => {
    await expectRpcError(
      client().updatePolicy({ project: other, name: "nope", enabled: false }),
      Code.NotFound,
      `policy nope not found in acme/${other.project}`,
    );
    await expectRpcError(
      client().deletePolicy({ project: other, name: "nope" }),
      Code.NotFound,
      `policy nope not found in acme/${other.project}`,
    );
  });

  it("leaves the policy unchanged after a rejected update", async () => {
    const { policies } = await client().listPolicies({ project: other });
    expect(policies).toHaveLength(1);
    expect(policies[0]).toMatchObject({ name: "gate", enabled: true, policyType: PolicyType.SOAK_TIME });
    expect(policies[0]?.config).toEqual({ case: "soakTime", value: expect.objectContaining({ durationSeconds: 60n }) });
  });
});

describe.each(PROTOCOLS)("EvaluatePolicies validation over %s", (protocol) => {
  const evaluate = (req: { targetEnvironment?: string; releaseIntentId?: string; project?: typeof project }) =>
    server.client(PolicyService, admin, protocol).evaluatePolicies({ project, targetEnvironment: "prod", ...req });

  it("requires target_environment", async () => {
    await expectRpcError(evaluate({ targetEnvironment: "" }), Code.InvalidArgument, "target_environment: is required");
  });

  it("rejects a branch longer than 256 characters", async () => {
    await expectRpcError(
      server
        .client(PolicyService, admin, protocol)
        .evaluatePolicies({ project, targetEnvironment: "prod", branch: "b".repeat(257) }),
      Code.InvalidArgument,
      "branch: must be at most 256 characters",
    );
  });

  it("rejects a malformed release_intent_id", async () => {
    await expectRpcError(
      evaluate({ releaseIntentId: "release-42" }),
      Code.InvalidArgument,
      "release_intent_id: must be a UUID",
    );
  });

  it("answers NOT_FOUND for an unknown release intent", async () => {
    const id = "6f1c2d3e-4a5b-4c6d-8e7f-901234567890";
    await expectRpcError(
      evaluate({ releaseIntentId: id }),
      Code.NotFound,
      `release_intent_id: release intent ${id} not found in acme/validation`,
    );
  });
});
