import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { ensureBuilt } from "./support/build.js";
import { createPostgresDatabase } from "./support/database.js";
import { waitFor } from "./support/grpc-js.js";
import { connectSharedNats, deleteStream, readStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { TEST_JWT_SECRET, token } from "./support/server.js";

interface Spawned {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
  port: number;
  adminPort: number;
}

/** Spawns the built server (`node dist/src/main.js`) and waits for its "listening" log line. */
async function spawnServer(env: Record<string, string>, args = ["dist/src/main.js"]): Promise<Spawned> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: "pipe" });
  const lines: Record<string, unknown>[] = [];
  let buffered = "";
  child.stdout?.on("data", (d: Buffer) => {
    buffered += d.toString();
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const line of parts) if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const listening = () => lines.find((l) => typeof l.msg === "string" && l.msg.startsWith("releasegate listening"));
  await waitFor(() => listening() !== undefined || child.exitCode !== null, 60_000, "the server to listen");
  const line = listening();
  if (line === undefined) throw new Error(`server exited: ${stderr}`);
  return { child, lines, exited, port: line.port as number, adminPort: line.adminPort as number };
}

describe("the built server on SIGTERM under load", () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let dataDir: string;
  const signal = uniqueSignalNames();
  beforeAll(async () => {
    await ensureBuilt();
    database = await createPostgresDatabase();
    dataDir = mkdtempSync(join(tmpdir(), "rg-process-"));
  }, 240_000);
  afterAll(async () => {
    await deleteStream(SHARED_NATS_URL, signal.stream);
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** The environment each test's server starts with (127.0.0.1, free ports, JSON logs); `over` adds or replaces. */
  const serverEnv = (over: Record<string, string>): Record<string, string> => ({
    HOST: "127.0.0.1",
    PORT: "0",
    METRICS_PORT: "0",
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
    LOG_FORMAT: "json",
    ...over,
  });

  it("drains: NOT_SERVING, in-flight RPCs finish, every acknowledged intent stored whole, every vote's event published, exit 0", async () => {
    const server = await spawnServer(
      serverEnv({
        NATS_URL: SHARED_NATS_URL,
        NATS_STREAM: signal.stream,
        NATS_SUBJECT_PREFIX: signal.prefix,
      }),
    );
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` });
    const admin = await token({ sub: "ci", orgs: { acme: "admin" }, service: true });
    const releases = createClient(ReleaseService, transport);
    const project = { organisation: "acme", project: "drain" };
    const bob = await token({ sub: "bob", orgs: { acme: "member" } });
    const votes = createClient(PolicyService, transport);
    await votes.createPolicy(
      {
        project,
        name: "approval",
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 2 } },
      },
      { headers: { authorization: `Bearer ${admin}` } },
    );

    // The probe endpoints see the server ready before the load starts.
    expect((await fetch(`http://127.0.0.1:${server.adminPort}/readyz`)).status).toBe(200);
    const healthSeen: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      try {
        for await (const r of createClient(Health, transport).watch({ service: "" })) healthSeen.push(r.status);
      } catch {
        // The stream ends with the server.
      }
    })();

    const acknowledged = new Map<string, string>();
    const approved = new Set<string>();
    const failed: ConnectError[] = [];
    let stop = false;
    const worker = async (n: number) => {
      for (let i = 0; !stop; i++) {
        const id = randomUUID();
        const version = `${n}.${i}.0`;
        try {
          const res = await releases.registerReleaseIntent(
            { project, releaseIntentId: id, branch: "main", version },
            { headers: { authorization: `Bearer ${admin}` } },
          );
          expect(res.created).toBe(true);
          acknowledged.set(id, version);
          if (i % 3 === 0) {
            // Every third intent also gets a vote: its event must reach JetStream despite the shutdown.
            await votes.externalApproveRelease(
              { project, releaseIntentId: id, targetEnvironment: "prod" },
              { headers: { authorization: `Bearer ${bob}` } },
            );
            approved.add(id);
          }
        } catch (err) {
          failed.push(ConnectError.from(err));
          return; // the server is going away
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, n) => worker(n));
    await waitFor(() => acknowledged.size >= 100, 60_000, "100 acknowledged RPCs");
    server.child.kill("SIGTERM");
    const code = await server.exited;
    stop = true;
    await Promise.all(workers);
    await watching;

    expect(code).toBe(0);
    expect(healthSeen[0]).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(healthSeen.at(-1)).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    // RPCs after the drain began were refused, not half-done: transport-level codes only.
    for (const err of failed) expect([Code.Unavailable, Code.Canceled, Code.Internal, Code.Unknown]).toContain(err.code);
    expect(server.lines.some((l) => l.msg === "shutting down" && l.signal === "SIGTERM")).toBe(true);
    expect(server.lines.at(-1)?.msg).toBe("stopped");

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ id: string; version: string; branch: string; organisation: string }>(
        "select id, version, branch, organisation from release_intents where project = 'drain'",
      );
      const stored = new Map(rows.map((r) => [r.id, r]));
      // Every acknowledged intent is there, exactly as sent.
      for (const [id, version] of acknowledged) expect(stored.get(id), id).toMatchObject({ version, branch: "main", organisation: "acme" });
      // Nothing half-written: anything else stored (committed as the client lost the answer) is whole too.
      for (const r of rows) expect(r.branch).toBe("main");
      expect(rows.length - acknowledged.size).toBeLessThanOrEqual(failed.length);
      // A vote, its history entry and its outbox event commit together or not at all.
      const torn = await client.query<{ n: string }>(
        `select count(*) as n from approval_votes v
          where not exists (select 1 from approval_history h where h.release_intent_id = v.release_intent_id)
             or not exists (select 1 from outbox o where o.release_intent_id = v.release_intent_id)`,
      );
      expect(Number(torn.rows[0]?.n)).toBe(0);
      // Every acknowledged vote's event was published before exit (the relay flushed)…
      const outbox = await client.query<{ release_intent_id: string; event_id: string; published: boolean }>(
        "select release_intent_id, event_id, published_at is not null as published from outbox",
      );
      const byIntent = new Map(outbox.rows.map((r) => [r.release_intent_id, r]));
      expect(approved.size).toBeGreaterThan(0);
      for (const id of approved) expect(byIntent.get(id)?.published, id).toBe(true);
      // …and is in the stream.
      const nc = await connectSharedNats();
      try {
        const inStream = new Set((await readStream(nc, signal.stream)).map((e) => e.msgId));
        for (const id of approved) expect(inStream.has(byIntent.get(id)?.event_id), id).toBe(true);
      } finally {
        await nc.close();
      }
    } finally {
      await client.end();
    }
  }, 120_000);

  it("a SIGTERM during start-up (at its first log line) still shuts down gracefully: exit 0, \"stopped\"", async () => {
    const child = spawn(process.execPath, ["dist/src/main.js"], {
      env: { ...process.env, ...serverEnv({ NATS_URL: "" }) },
      stdio: "pipe",
    });
    let stdout = "";
    child.stdout?.on("data", (d: Buffer) => {
      if (stdout === "") child.kill("SIGTERM");
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    expect(await exited).toBe(0);
    const messages = stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(messages).toContain("shutting down");
    expect(messages[messages.length - 1]).toBe("stopped");
  }, 120_000);

  it("`releasegate serve` runs the same server: flags override PORT/METRICS_PORT, probes answer, SIGINT exits 0", async () => {
    const other = await createPostgresDatabase();
    try {
      const server = await spawnServer(
        serverEnv({ PORT: "1", METRICS_PORT: "1", DATABASE_URL: other.url, NATS_URL: "" }),
        ["dist/src/cli/main.js", "serve", "--port", "0", "--metrics-port", "0"],
      );
      expect(server.port).not.toBe(1);
      const ready = await fetch(`http://127.0.0.1:${server.adminPort}/readyz`);
      expect(`${ready.status} ${await ready.text()}`).toBe("200 ready\n");
      const health = await createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` })).check(
        {},
      );
      expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      server.child.kill("SIGINT");
      expect(await server.exited).toBe(0);
      expect(server.lines.some((l) => l.msg === "shutting down" && l.signal === "SIGINT")).toBe(true);
    } finally {
      await other.drop();
    }
  }, 120_000);
});
