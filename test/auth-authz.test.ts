import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { DeploymentStatus, ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { rpcError } from "./support/rpc-error.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Who may call what (src/auth/permissions.ts), RPC by RPC over the wire:
// members read, evaluate and register intents; admins also manage policies and
// record deployments; services (pipelines) evaluate, register intents and
// record deployments but never manage policies. No role in the org: denied.

type Who = "member" | "admin" | "service" | "outsider";
const WHO: readonly Who[] = ["member", "admin", "service", "outsider"];

let server: TestServer;
const tokens = {} as Record<Who, string>;
const org = "acme";

beforeAll(async () => {
  server = await startTestServer();
  tokens.member = await token({ sub: "mia", orgs: { [org]: "member" } });
  tokens.admin = await token({ sub: "ada", orgs: { [org]: "admin" } });
  tokens.service = await token({ sub: "ci", orgs: { [org]: "member" }, service: true });
  tokens.outsider = await token({ sub: "olga", orgs: { other: "admin" } });
});
afterAll(() => server?.stop());

const soak = {
  case: "soakTime",
  value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60n },
} as const;

/** Each caller works in its own project of `acme`, set up by an admin. */
async function setUp(who: Who) {
  const project = { organisation: org, project: `authz-${who}` };
  const admin = server.client(PolicyService, tokens.admin);
  for (const name of ["existing", "doomed"])
    await admin.createPolicy({ project, name, policyType: PolicyType.SOAK_TIME, config: soak });
  const { releaseIntent } = await server
    .client(ReleaseService, tokens.admin)
    .registerReleaseIntent({ project, branch: "main" });
  return { project, intentId: releaseIntent!.releaseIntentId };
}

type Call = (who: Who, f: Awaited<ReturnType<typeof setUp>>) => Promise<unknown>;
const policy = (who: Who) => server.client(PolicyService, tokens[who]);
const release = (who: Who) => server.client(ReleaseService, tokens[who]);

const RPCS: Record<string, Call> = {
  CreatePolicy: (w, { project }) =>
    policy(w).createPolicy({ project, name: "created", policyType: PolicyType.SOAK_TIME, config: soak }),
  UpdatePolicy: (w, { project }) => policy(w).updatePolicy({ project, name: "existing", enabled: false }),
  DeletePolicy: (w, { project }) => policy(w).deletePolicy({ project, name: "doomed" }),
  ListPolicies: (w, { project }) => policy(w).listPolicies({ project }),
  EvaluatePolicies: (w, { project, intentId }) =>
    policy(w).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: intentId }),
  RegisterReleaseIntent: (w, { project }) => release(w).registerReleaseIntent({ project, branch: "main" }),
  GetReleaseIntent: (w, { project, intentId }) => release(w).getReleaseIntent({ project, releaseIntentId: intentId }),
  RecordDeployment: (w, { project, intentId }) =>
    release(w).recordDeployment({
      project,
      environment: "staging",
      releaseIntentId: intentId,
      status: DeploymentStatus.SUCCEEDED,
    }),
};

// true = allowed
const MATRIX: Record<string, Record<Who, boolean>> = {
  CreatePolicy: { member: false, admin: true, service: false, outsider: false },
  UpdatePolicy: { member: false, admin: true, service: false, outsider: false },
  DeletePolicy: { member: false, admin: true, service: false, outsider: false },
  ListPolicies: { member: true, admin: true, service: true, outsider: false },
  EvaluatePolicies: { member: true, admin: true, service: true, outsider: false },
  RegisterReleaseIntent: { member: true, admin: true, service: true, outsider: false },
  GetReleaseIntent: { member: true, admin: true, service: true, outsider: false },
  RecordDeployment: { member: false, admin: true, service: true, outsider: false },
};

const SUBJECT: Record<Who, string> = { member: "mia", admin: "ada", service: "ci", outsider: "olga" };
const ACTION: Record<string, string> = {
  CreatePolicy: "policy.write",
  UpdatePolicy: "policy.write",
  DeletePolicy: "policy.write",
  RecordDeployment: "deployment.record",
};

describe.each(WHO)("as %s", (who) => {
  let fixture: Awaited<ReturnType<typeof setUp>>;
  beforeAll(async () => {
    fixture = await setUp(who);
  });

  it.each(Object.keys(RPCS))("%s", async (rpc) => {
    const call = RPCS[rpc]!(who, fixture);
    if (MATRIX[rpc]![who]) {
      await expect(call).resolves.toBeDefined();
      return;
    }
    const err = await rpcError(call);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.PermissionDenied);
    const expected =
      who === "outsider"
        ? `caller olga has no role in organisation ${org}`
        : `${who === "service" ? "service account" : who} ${SUBJECT[who]} may not ${ACTION[rpc]} in organisation ${org}`;
    expect(err.rawMessage).toBe(expected);
  });
});

describe("denied writes change nothing", () => {
  it("leaves the member's project as the admin set it up", async () => {
    const { policies } = await server
      .client(PolicyService, tokens.admin)
      .listPolicies({ project: { organisation: org, project: "authz-member" } });
    expect(policies.map((p) => [p.name, p.enabled])).toEqual([
      ["doomed", true],
      ["existing", true],
    ]);
  });

  it("applied the admin's writes", async () => {
    const { policies } = await server
      .client(PolicyService, tokens.admin)
      .listPolicies({ project: { organisation: org, project: "authz-admin" } });
    expect(policies.map((p) => [p.name, p.enabled])).toEqual([
      ["created", true],
      ["existing", false],
    ]);
  });
});
