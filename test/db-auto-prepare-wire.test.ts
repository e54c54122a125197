import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTO_PREPARE_THRESHOLD } from "../src/db/auto-prepare.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { createApprovalPolicy, registerIntent } from "./support/approval-fixtures.js";
import { createPostgresDatabase } from "./support/database.js";
import { PgProxy } from "./support/pg-proxy.js";
import { authHeader, token } from "./support/server.js";
import { ServerProcess } from "./support/server-process.js";

// DB_AUTO_PREPARE as an operator sets it: the built server in its own process,
// its Postgres traffic read off the wire by a protocol-aware proxy (Parse
// messages name the statement they create; "" is the unnamed one that
// PgBouncer in transaction mode before 1.21 needs).
describe("DB_AUTO_PREPARE over the wire (server process, Postgres through a proxy)", () => {
  let pgdb: { url: string; drop: () => Promise<void> };

  beforeAll(async () => {
    pgdb = await createPostgresDatabase();
  });
  afterAll(async () => {
    await pgdb?.drop();
  });

  /** Starts the server with `autoPrepare` through a fresh proxy, evaluates `calls` times; returns the Parse names seen. */
  async function parseNamesAfterEvaluations(autoPrepare: "true" | "false", calls: number): Promise<readonly string[]> {
    const proxy = await PgProxy.forUrl(pgdb.url);
    // One pooled connection, so every evaluation meets the same session's statement counts.
    const server = await ServerProcess.create({ DATABASE_URL: proxy.urlThrough(pgdb.url), DB_POOL_SIZE: "1", DB_AUTO_PREPARE: autoPrepare });
    try {
      await server.start();
      const grpc = {
        client: <S extends DescService>(service: S, tok?: string) =>
          createClient(service, createGrpcTransport({ baseUrl: server.baseUrl, interceptors: authHeader(tok) as never })),
      };
      const admin = await token({ sub: "alice", orgs: { acme: "admin" } });
      const project = { organisation: "acme", project: `wire-${autoPrepare}` };
      await createApprovalPolicy(grpc, admin, project, "needs-one", "prod", 1);
      const releaseIntentId = await registerIntent(grpc, admin, project);
      const pipeline = grpc.client(PolicyService, await token({ sub: "deployer", orgs: { acme: "member" } }));
      for (let i = 0; i < calls; i++) {
        const answer = await pipeline.evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId });
        // The gate answers the same way either way: 0 of 1 approvals.
        expect(answer.allPassed).toBe(false);
      }
      return [...proxy.parseNames()];
    } finally {
      await server.dispose();
      await proxy.stop();
    }
  }

  it("sends only unnamed statements when DB_AUTO_PREPARE=false", async () => {
    const names = await parseNamesAfterEvaluations("false", AUTO_PREPARE_THRESHOLD * 3);
    // The proxy saw the server's statements (migrations, reads): it is reading the right stream.
    expect(names.length).toBeGreaterThan(AUTO_PREPARE_THRESHOLD * 3);
    expect(names.filter((n) => n !== "")).toEqual([]);
  });

  it("names the evaluation's statement from its third run when DB_AUTO_PREPARE is left on", async () => {
    const names = await parseNamesAfterEvaluations("true", AUTO_PREPARE_THRESHOLD * 3);
    expect(names.filter((n) => n !== "").length).toBeGreaterThan(0);
  });
});
