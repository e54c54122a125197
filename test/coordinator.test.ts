import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { type Cast, cast, createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { deleteStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "web" };
const names = uniqueSignalNames();
let server: TestServer;
let t: Cast;
let coordinator: ChildProcess | undefined;
const output: string[] = [];

beforeAll(async () => {
  server = await startTestServer({
    env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
});
afterAll(async () => {
  if (coordinator !== undefined && coordinator.exitCode === null) {
    const exited = new Promise((r) => coordinator?.once("exit", r));
    coordinator.kill("SIGKILL");
    await exited;
  }
  await server?.stop();
  await deleteStream(SHARED_NATS_URL, names.stream);
});

const line = (pattern: RegExp, what: string) =>
  waitFor(() => output.find((l) => pattern.test(l)), 20_000, `coordinator to print ${what}; got:\n${output.join("\n")}`);

describe("scripts/coordinator.ts", () => {
  it("prints released once the second approval lands", async () => {
    const id = await registerIntent(server, t.ada, project);
    coordinator = spawn(process.execPath, ["--import", "tsx", "scripts/coordinator.ts"], {
      env: {
        ...process.env,
        // Scheme-less, as a person types it.
        RELEASEGATE_SERVER: `127.0.0.1:${server.app.port}`,
        RELEASEGATE_TOKEN: await token({ sub: "coordinator", orgs: { acme: "member" }, service: true }),
        NATS_URL: SHARED_NATS_URL,
        NATS_STREAM: names.stream,
        NATS_SUBJECT_PREFIX: names.prefix,
        COORDINATOR_DURABLE: "test-coordinator",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const s of [coordinator.stdout, coordinator.stderr])
      s?.on("data", (chunk: Buffer) => output.push(...String(chunk).split("\n").filter((l) => l !== "")));
    await line(/^coordinator: following/, "that it follows the stream");

    const vote = { project, releaseIntentId: id, targetEnvironment: "prod" };
    await server.client(PolicyService, t.bob).externalApproveRelease(vote);
    expect(await line(new RegExp(`^waiting ${id} for prod`), "waiting")).toContain("awaiting approval: 1/2");
    expect(output.some((l) => l.startsWith("released"))).toBe(false);

    await server.client(PolicyService, t.carol).externalApproveRelease(vote);
    expect(await line(/^released /, "released")).toBe(`released ${id} to prod (acme/web)`);

    const exited = new Promise<number | null>((r) => coordinator?.once("exit", (code) => r(code)));
    coordinator.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

describe("scripts/coordinator.ts settings", () => {
  const runCoordinator = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", "scripts/coordinator.ts"], {
        env: { ...process.env, RELEASEGATE_SERVER: "", RELEASEGATE_URL: "", RELEASEGATE_TOKEN: "", ...env },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      child.on("close", (code) => resolve({ code, stderr }));
    });

  it("still reads RELEASEGATE_URL, with a deprecation warning", async () => {
    const res = await runCoordinator({ RELEASEGATE_URL: "ftp://old:1" });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("warning: RELEASEGATE_URL is deprecated: set RELEASEGATE_SERVER (the name the CLI reads) instead\n");
    expect(res.stderr).toContain('error: RELEASEGATE_URL "ftp://old:1": unsupported scheme ftp');
  });

  it("prefers RELEASEGATE_SERVER over RELEASEGATE_URL, without a warning", async () => {
    const res = await runCoordinator({ RELEASEGATE_SERVER: "http://[bad", RELEASEGATE_URL: server.baseUrl });
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(
      'error: RELEASEGATE_SERVER "http://[bad": not a server address; expected HOST:PORT or http(s)://HOST:PORT, e.g. localhost:50051\n',
    );
  });
});
