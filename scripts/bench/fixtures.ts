import { randomBytes, randomUUID } from "node:crypto";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { mintToken } from "../../src/auth/token-verifier.js";
import { PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { Health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { ApproverService } from "../../src/gen/releasegate/v1/approver_pb.js";
import { DeploymentStatus, ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { GrpcJsCaller } from "./grpc-js-caller.js";
import { waitFor } from "./load.js";

/** Shared HS256 secret of the servers the benchmarks spawn. */
export const BENCH_JWT_SECRET = "bench-secret-that-is-at-least-32-characters-long";
/** Where bench databases are created; BENCH_ADMIN_DATABASE_URL overrides. */
const ADMIN_DATABASE_URL = process.env.BENCH_ADMIN_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** The database pool size of the spawned servers. */
const BENCH_POOL_SIZE = 10;
const ORG = "bench";
/** Soak of the seeded policies, seconds: short, since soak counts from when the server recorded the deploy. */
const SEED_SOAK_SECONDS = 1n;
/** How long the seeded intent may take to pass (its soak, then a margin), milliseconds. */
const SEED_PASS_TIMEOUT_MS = 15_000;

export interface SeededProject {
  readonly project: { organisation: string; project: string };
  /** An intent on `main` deployed to staging and qa, with 3 approvals for prod: it passes all 5 policies. */
  readonly intentId: string;
}

/** Runs `sql` on the admin database. */
export async function admin(sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  return client.query(sql).finally(() => client.end());
}

/** An empty Postgres database of its own, dropped by `drop()`. */
export async function createBenchDatabase(): Promise<{ url: string; drop(): Promise<unknown> }> {
  const name = `rg_bench_${randomBytes(5).toString("hex")}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** The environment of a bench server on Postgres `databaseUrl` and NATS, with a JetStream `stream` of its own. */
export function serverEnv(databaseUrl: string, dataDir: string, natsUrl: string): { env: Record<string, string>; stream: string } {
  const suffix = randomBytes(4).toString("hex");
  const stream = `RG_BENCH_${suffix}`;
  const nats = { NATS_URL: natsUrl, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: `rgbench${suffix}.approvals` };
  return { stream, env: { RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET, DATABASE_URL: databaseUrl, DB_POOL_SIZE: String(BENCH_POOL_SIZE), DATA_DIR: dataDir, ...nats } };
}

export function userToken(sub: string, role: "admin" | "member" = "member"): Promise<string> {
  return mintToken(BENCH_JWT_SECRET, { sub, username: sub, orgRoles: { [ORG]: role }, expiresIn: "2h" });
}

/** A load-generator client (grpc-js, its own connection) calling as member `sub`. */
export async function loadCaller(baseUrl: string, sub: string): Promise<GrpcJsCaller> {
  return new GrpcJsCaller(baseUrl, await userToken(sub));
}

/** A connect-node gRPC transport for setting up and for streams (not the measured load). */
export function grpcTransport(baseUrl: string, token: string): Transport {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createGrpcTransport({ baseUrl, interceptors: [auth] });
}

/** `grpc.health.v1.Health/Check`: the cheapest RPC of the server, the ceiling of the others. */
export const healthCheck = (caller: GrpcJsCaller) => () => caller.unary(Health.method.check, {});

/** The measured call: may the seeded intent go to prod? */
export function evaluateSeeded(caller: GrpcJsCaller, seeded: SeededProject) {
  const request = { project: seeded.project, targetEnvironment: "prod", releaseIntentId: seeded.intentId };
  return () => caller.unary(PolicyService.method.evaluatePolicies, request);
}

/** ApproveRelease of `releaseIntentId` for prod in the seeded project. */
export function approveSeeded(caller: GrpcJsCaller, seeded: SeededProject, releaseIntentId: string): Promise<unknown> {
  return caller.unary(PolicyService.method.approveRelease, { project: seeded.project, releaseIntentId, targetEnvironment: "prod" });
}

/** Registers `count` intents on main (author bench-author) in `project`; returns their ids. */
export async function registerIntents(baseUrl: string, project: SeededProject["project"], count: number): Promise<string[]> {
  const releases = createClient(ReleaseService, grpcTransport(baseUrl, await userToken("bench-admin", "admin")));
  const ids = Array.from({ length: count }, () => randomUUID());
  for (const id of ids) await releases.registerReleaseIntent({ project, releaseIntentId: id, authorUserId: "bench-author", branch: "main" });
  return ids;
}

/** The approval policy's three rules when seeded `withRules`: who of the 3 voters fills which. */
const RULES = [{ group: "security", voter: "ann" }, { group: "sre", voter: "bob" }, { minRole: "maintainer", voter: "cy" }] as const;

/**
 * The benchmark project: 5 policies on prod (two soaks, two branch rules, an
 * approval needing 3 votes) and one intent that passes all of them.
 * `withRules`: the approval has three rules besides (one from group security,
 * one from group sre, one of role maintainer; distinct approvers), met by the
 * 3 voters: members of the groups and a project-scoped maintainer grant.
 */
export async function seedProject(baseUrl: string, projectName: string, withRules = false): Promise<SeededProject> {
  const project = { organisation: ORG, project: projectName };
  const transport = grpcTransport(baseUrl, await userToken("bench-admin", "admin"));
  const policies = createClient(PolicyService, transport);
  const targetEnvironment = "prod";
  for (const sourceEnvironment of ["staging", "qa"]) {
    const value = { sourceEnvironment, targetEnvironment, durationSeconds: SEED_SOAK_SECONDS };
    await policies.createPolicy({ project, name: `soak-${sourceEnvironment}`, policyType: PolicyType.SOAK_TIME, config: { case: "soakTime", value } });
  }
  for (const [name, branchPattern] of [["main-only", "^main$"], ["no-wip", "^(main|release/[0-9.]+)$"]] as const)
    await policies.createPolicy({ project, name, policyType: PolicyType.BRANCH_RESTRICTION, config: { case: "branchRestriction", value: { targetEnvironment, branchPattern } } });
  const directory = createClient(ApproverService, transport);
  const organisation = ORG;
  for (const r of withRules ? RULES : [])
    if ("group" in r) {
      await directory.createApproverGroup({ organisation, name: r.group });
      await directory.addGroupMember({ organisation, group: r.group, userId: r.voter, displayName: r.voter, scope: "organisation" });
    } else await directory.grantRole({ organisation, userId: r.voter, role: r.minRole, scope: "project", scopeId: projectName });
  const rules = withRules ? RULES.map(({ voter, ...rule }) => ({ ...rule, requiredApprovals: 1 })) : [];
  const approvals = { case: "externalApproval", value: { targetEnvironment, requiredApprovals: 3, rules, distinctApprovers: withRules } } as const;
  await policies.createPolicy({ project, name: withRules ? "three-rules" : "three-approvals", policyType: PolicyType.EXTERNAL_APPROVAL, config: approvals });
  const [releaseIntentId = ""] = await registerIntents(baseUrl, project, 1);
  for (const environment of ["staging", "qa"])
    await createClient(ReleaseService, transport).recordDeployment({ project, environment, releaseIntentId, status: DeploymentStatus.SUCCEEDED });
  for (const { voter } of RULES)
    await createClient(PolicyService, grpcTransport(baseUrl, await userToken(voter))).approveRelease({ project, releaseIntentId, targetEnvironment });
  await waitFor("the bench intent passing its 5 policies", SEED_PASS_TIMEOUT_MS, async () => {
    const check = await policies.evaluatePolicies({ project, targetEnvironment, releaseIntentId });
    return check.allPassed && check.evaluations.length === 5;
  });
  return { project, intentId: releaseIntentId };
}
