import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../src/app.js";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { createPostgresDatabase } from "./support/database.js";
import { waitFor } from "./support/grpc-js.js";
import { PROTOCOLS, startTestServer, type TestServer, testConfig, token } from "./support/server.js";

const project = { organisation: "acme", project: "limits" };
const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => ConnectError.from(e));

describe("max request size (MAX_REQUEST_BYTES)", () => {
  let server: TestServer;
  let admin: string;
  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_REQUEST_BYTES: "2048" } });
    admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  });
  afterAll(() => server?.stop());

  it.each(PROTOCOLS)("answers RESOURCE_EXHAUSTED to an oversize request over %s and keeps serving", async (protocol) => {
    const client = server.client(PolicyService, admin, protocol);
    const err = await errorOf(
      client.createPolicy({
        project,
        name: "x".repeat(4096),
        policyType: PolicyType.SOAK_TIME,
        config: { case: "soakTime", value: { sourceEnvironment: "a", targetEnvironment: "b", durationSeconds: 1n } },
      }),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/message size (\d+ )?is larger than configured readMaxBytes 2048/);
    const { policies } = await client.listPolicies({ project });
    expect(policies).toEqual([]);
  });
});

/** A server on its own Postgres database, opened by the App itself (so with its statement_timeout). */
async function startOnPostgres(env: Record<string, string>) {
  const database = await createPostgresDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), "rg-limits-"));
  const config = testConfig(dataDir, { DATABASE_URL: database.url, ...env });
  const app = new App({ config, logger: pino({ level: "silent" }) });
  await app.start();
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}` });
  return {
    app,
    url: database.url,
    transport,
    async stop() {
      await app.stop(1_000);
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Holds an exclusive lock on `policies` from another session, so every policy query waits. */
async function lockPolicies(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("begin");
  await client.query("lock table policies in access exclusive mode");
  const waiting = async () => {
    // Activity statistics are a snapshot per transaction: drop it to see now.
    await client.query("select pg_stat_clear_snapshot()");
    const { rows } = await client.query<{ n: string }>(
      `select count(*) as n from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and wait_event_type = 'Lock'`,
    );
    return Number(rows[0]?.n);
  };
  return {
    waiting,
    async release() {
      await client.query("rollback");
      await client.end();
    },
  };
}

/** A Postgres-backed server for the tests of one describe block, with a policies client and auth. */
function serverFor(env: Record<string, string>) {
  let server: Awaited<ReturnType<typeof startOnPostgres>>;
  let admin: string;
  beforeAll(async () => {
    server = await startOnPostgres(env);
    admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  });
  afterAll(() => server?.stop());
  return {
    url: () => server.url,
    policies: () => createClient(PolicyService, server.transport),
    health: () => createClient(Health, server.transport),
    auth: () => ({ headers: { authorization: `Bearer ${admin}` } }),
  };
}

describe("deadlines on Postgres", () => {
  const { url, policies, auth } = serverFor({ RPC_TIMEOUT_MS: "400" });

  it("gives an RPC without a deadline RPC_TIMEOUT_MS: DEADLINE_EXCEEDED, and Postgres cancels its query", async () => {
    const lock = await lockPolicies(url());
    try {
      const started = Date.now();
      const call = errorOf(policies().listPolicies({ project }, auth()));
      await waitFor(async () => (await lock.waiting()) === 1, 5_000, "the query to wait on the lock");
      const err = await call;
      expect(err?.code).toBe(Code.DeadlineExceeded);
      expect(Date.now() - started).toBeLessThan(3_000);
      // statement_timeout (= RPC_TIMEOUT_MS) cancels the waiting query while the lock is still held.
      await waitFor(async () => (await lock.waiting()) === 0, 5_000, "the blocked query to be cancelled");
    } finally {
      await lock.release();
    }
    // The pool is usable again.
    expect((await policies().listPolicies({ project }, auth())).policies).toEqual([]);
  });

  it("honours a shorter deadline set by the caller", async () => {
    const lock = await lockPolicies(url());
    try {
      const started = Date.now();
      const err = await errorOf(policies().listPolicies({ project }, { ...auth(), timeoutMs: 100 }));
      expect(err?.code).toBe(Code.DeadlineExceeded);
      expect(Date.now() - started).toBeLessThan(400);
    } finally {
      await lock.release();
    }
  });

});

describe("overload on Postgres", () => {
  const { url, policies, health, auth } = serverFor({ MAX_IN_FLIGHT: "2" });

  it("answers RESOURCE_EXHAUSTED beyond MAX_IN_FLIGHT, while health still answers", async () => {
    const lock = await lockPolicies(url());
    let first: Promise<unknown>[] = [];
    try {
      // Two projects: concurrent loads of one project's policies share a query.
      first = ["a", "b"].map((p) =>
        policies().listPolicies({ project: { ...project, project: p } }, { ...auth(), timeoutMs: 5_000 }),
      );
      await waitFor(async () => (await lock.waiting()) === 2, 5_000, "two RPCs waiting on the lock");
      const err = await errorOf(policies().listPolicies({ project }, auth()));
      expect(err?.code).toBe(Code.ResourceExhausted);
      expect(err?.rawMessage).toBe("server overloaded: 2 RPCs in flight (MAX_IN_FLIGHT=2); retry with backoff");
      const status = (await health().check({ service: "" })).status;
      expect(status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      await lock.release();
    }
    // The two admitted RPCs complete normally once the lock is gone.
    for (const r of await Promise.all(first)) expect(r).toMatchObject({ policies: [] });
  });
});
