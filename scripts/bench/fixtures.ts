import { randomBytes, randomUUID } from "node:crypto";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { mintToken } from "../../src/auth/token-verifier.js";
import { type EvaluatePoliciesResponse, PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { DeploymentStatus, ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { GrpcJsCaller } from "./grpc-js-caller.js";

/** Shared HS256 secret of the servers the benchmarks spawn. */
export const BENCH_JWT_SECRET = "bench-secret-that-is-at-least-32-characters-long";
/** Where bench databases are created; BENCH_ADMIN_DATABASE_URL overrides. */
export const ADMIN_DATABASE_URL =
  process.env.BENCH_ADMIN_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** The pool size of the spawned servers and of the bare `pg` ceiling. */
export const BENCH_POOL_SIZE = 10;
export const ORG = "bench";

export interface BenchDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

async function admin<T>(run: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** An empty Postgres database of its own, dropped by `drop()`. */
export async function createBenchDatabase(): Promise<BenchDatabase> {
  const name = `rg_bench_${randomBytes(5).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export function userToken(sub: string, role: "admin" | "member" = "member"): Promise<string> {
  return mintToken(BENCH_JWT_SECRET, { sub, username: sub, orgRoles: { [ORG]: role }, expiresIn: "2h" });
}

/** A load-generator client (grpc-js, its own connection) calling as member `sub`. */
export async function loadCaller(baseUrl: string, sub: string): Promise<GrpcJsCaller> {
  return new GrpcJsCaller(baseUrl, await userToken(sub));
}

/** A gRPC (HTTP/2) transport to `baseUrl` that sends `token`. */
export function grpcTransport(baseUrl: string, token?: string): Transport {
  return createGrpcTransport({
    baseUrl,
    interceptors:
      token === undefined
        ? []
        : [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${token}`);
              return next(req);
            },
          ],
  });
}

/** The measured call of sections 1, 4 and 5: may the seeded intent go to prod? */
export function evaluateSeeded(caller: GrpcJsCaller, seeded: SeededProject): () => Promise<EvaluatePoliciesResponse> {
  const request = { project: seeded.project, targetEnvironment: "prod", releaseIntentId: seeded.intentId };
  return () => caller.unary(PolicyService.method.evaluatePolicies, request);
}

/** ApproveRelease of `releaseIntentId` for prod in the seeded project. */
export function approveSeeded(caller: GrpcJsCaller, seeded: SeededProject, releaseIntentId: string): Promise<unknown> {
  return caller.unary(PolicyService.method.approveRelease, {
    project: seeded.project,
    releaseIntentId,
    targetEnvironment: "prod",
  });
}

export interface SeededProject {
  readonly project: { organisation: string; project: string };
  /** An intent on `main` deployed to staging and qa an hour ago, with 3 approvals for prod. */
  readonly intentId: string;
  readonly policies: Client<typeof PolicyService>;
}

/** Source environments of the seeded project's two soak policies (where its intent was deployed). */
export const SEED_SOAK_SOURCES = ["staging", "qa"] as const;

/**
 * The benchmark project: 5 policies on prod (two soaks, two branch rules, an
 * approval needing 3 votes) and one intent that passes all of them.
 */
export async function seedProject(baseUrl: string, projectName: string): Promise<SeededProject> {
  const project = { organisation: ORG, project: projectName };
  const adminToken = await userToken("bench-admin", "admin");
  const policies = createClient(PolicyService, grpcTransport(baseUrl, adminToken));
  const releases = createClient(ReleaseService, grpcTransport(baseUrl, adminToken));
  const soak = (name: string, source: string, seconds: bigint) =>
    policies.createPolicy({
      project,
      name,
      policyType: PolicyType.SOAK_TIME,
      config: { case: "soakTime", value: { sourceEnvironment: source, targetEnvironment: "prod", durationSeconds: seconds } },
    });
  const branch = (name: string, pattern: string) =>
    policies.createPolicy({
      project,
      name,
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: { case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern: pattern } },
    });
  const [staging, qa] = SEED_SOAK_SOURCES;
  await soak("soak-staging", staging, 600n);
  await soak("soak-qa", qa, 300n);
  await branch("main-only", "^main$");
  await branch("no-wip", "^(main|release/[0-9.]+)$");
  await policies.createPolicy({
    project,
    name: "three-approvals",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 3 } },
  });
  const intentId = randomUUID();
  await releases.registerReleaseIntent({
    project,
    releaseIntentId: intentId,
    authorUserId: "bench-author",
    authorUsername: "bench-author",
    branch: "main",
    version: "v1",
  });
  const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
  for (const environment of SEED_SOAK_SOURCES)
    await releases.recordDeployment({
      project,
      environment,
      releaseIntentId: intentId,
      status: DeploymentStatus.SUCCEEDED,
      finishedAt: anHourAgo,
    });
  for (const voter of ["ann", "bob", "cy"]) {
    const client = createClient(PolicyService, grpcTransport(baseUrl, await userToken(voter)));
    await client.approveRelease({ project, releaseIntentId: intentId, targetEnvironment: "prod" });
  }
  const check = await policies.evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: intentId });
  if (!check.allPassed || check.evaluations.length !== 5)
    throw new Error(`bench project does not pass as designed: ${JSON.stringify(check.evaluations)}`);
  return { project, intentId, policies };
}

/** Registers `count` intents (author bench-author) in `project`; returns their ids. */
export async function registerIntents(baseUrl: string, project: SeededProject["project"], count: number) {
  const releases = createClient(ReleaseService, grpcTransport(baseUrl, await userToken("bench-admin", "admin")));
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    await releases.registerReleaseIntent({ project, releaseIntentId: id, authorUserId: "bench-author", branch: "main" });
    ids.push(id);
  }
  return ids;
}
