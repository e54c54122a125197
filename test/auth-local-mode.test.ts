import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, LOCAL_SECRET_FILE, mintToken } from "../src/auth/token-verifier.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { createLogger } from "../src/logger.js";
import { createPostgresDatabase } from "./support/database.js";
import { expectRpcError } from "./support/rpc-error.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// With no JWT key configured the server creates a secret under DATA_DIR and
// scripts/mint-token.ts mints tokens for it; nothing unsigned gets in.

const run = promisify(execFile);
const TSX = join(process.cwd(), "node_modules/.bin/tsx");
const project = { organisation: "acme", project: "local" };

let dataDir: string;
let server: TestServer;

/** Runs the token script the README documents (`npm run token -- ...`), from source. */
async function mintWithScript(...args: string[]): Promise<string> {
  const { stdout } = await run(TSX, ["scripts/mint-token.ts", ...args], {
    env: { ...process.env, DATA_DIR: dataDir, RELEASEGATE_JWT_SECRET: "" },
  });
  return stdout.trim();
}

const logs: { msg: string; [key: string]: unknown }[] = [];
const logger = createLogger("info", "json", {
  write(line: string) {
    logs.push(JSON.parse(line) as { msg: string });
  },
});

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "rg-local-"));
  server = await startTestServer({ env: { RELEASEGATE_JWT_SECRET: "", DATA_DIR: dataDir }, logger });
});
afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

// Child processes and a second server start slowly on a loaded 2-core machine.
describe("local mode", { timeout: 60_000 }, () => {
  it("logs that it runs in local mode, which database it uses and where it listens", () => {
    expect(logs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 30, msg: "database ready", database: expect.stringMatching(/PGlite|postgres/) }),
        expect.objectContaining({
          level: 40,
          dataDir,
          msg: expect.stringMatching(/^no JWT key configured: local mode/),
        }),
        expect.objectContaining({
          level: 30,
          port: server.app.port,
          msg: expect.stringMatching(new RegExp(`^releasegate listening on 127\\.0\\.0\\.1:${server.app.port} `)),
        }),
      ]),
    );
  });

  it("creates a private signing secret under DATA_DIR", () => {
    const path = join(dataDir, LOCAL_SECRET_FILE);
    expect(readFileSync(path, "utf8").trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  let scripted: string;

  it("accepts a token minted by scripts/mint-token.ts", async () => {
    scripted = await mintWithScript("--sub", "alice", "--org", "acme=admin", "--org", "beta=member");
    const { policies } = await server.client(PolicyService, scripted).listPolicies({ project });
    expect(policies).toEqual([]);
    const claims = JSON.parse(Buffer.from(scripted.split(".")[1]!, "base64url").toString());
    expect(claims).toMatchObject({
      sub: "alice",
      preferred_username: "alice",
      org_roles: { acme: "admin", beta: "member" },
      actor_type: "user",
    });
  });

  it("enforces roles of tokens signed with the local secret", async () => {
    const secret = readFileSync(join(dataDir, LOCAL_SECRET_FILE), "utf8").trim();
    const member = await mintToken(secret, { sub: "bob", orgRoles: { acme: "member" } });
    await expectRpcError(
      server.client(PolicyService, member).deletePolicy({ project, name: "x" }),
      Code.PermissionDenied,
      "member bob may not policy.write in organisation acme",
    );
  });

  it("refuses a bad --org argument", async () => {
    await expect(mintWithScript("--org", "acme=owner")).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--org acme=owner: expected ORG=ROLE with ROLE one of viewer, member, maintainer, admin"),
    });
  });

  it("rejects tokens signed with any other secret", async () => {
    await expectRpcError(
      server.client(PolicyService, await token({ sub: "alice", orgs: { acme: "admin" } })).listPolicies({ project }),
      Code.Unauthenticated,
      "invalid token (bad signature)",
    );
  });

  it("keeps the secret across restarts, so minted tokens stay valid", async () => {
    const again = await startTestServer({ env: { RELEASEGATE_JWT_SECRET: "", DATA_DIR: dataDir } });
    try {
      await expect(again.client(PolicyService, scripted).listPolicies({ project })).resolves.toBeDefined();
    } finally {
      await again.stop();
    }
  });
});

/** No JWT key in the server's environment, whatever the test run's shell exported (empty means unset). */
const NO_KEY = { RELEASEGATE_JWT_SECRET: "", RELEASEGATE_JWT_PUBLIC_KEY: "", RELEASEGATE_JWKS_URL: "", RELEASEGATE_LOCAL_MODE: "" };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the server's entry point (`src/main.ts` through tsx, what `npm start`
 * runs once built) until it exits, or until `whileRunning` (given its JSON log
 * lines so far) has done its part and SIGTERM stopped it.
 */
function runServer(
  env: Record<string, string>,
  whileRunning?: (lines: () => Record<string, unknown>[]) => Promise<void>,
): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: { ...process.env, ...NO_KEY, HOST: "127.0.0.1", PORT: "0", METRICS_PORT: "0", LOG_FORMAT: "json", ...env },
    stdio: "pipe",
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const lines = () =>
    stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return (async () => {
    if (whileRunning !== undefined)
      try {
        await Promise.race([whileRunning(lines), exited]);
      } finally {
        if (child.exitCode === null) child.kill("SIGTERM");
      }
    return { code: await exited, stdout, stderr };
  })();
}

describe("refusing to start without a JWT key (the real process)", { timeout: 60_000 }, () => {
  it("exits 2 with one line naming the three key variables when DATABASE_URL is set and no key", async () => {
    // Nothing listens on port 1: the configuration is refused before any connection is tried.
    const { code, stdout, stderr } = await runServer({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/releasegate" });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      "config error: RELEASEGATE_JWT_SECRET, RELEASEGATE_JWT_PUBLIC_KEY, RELEASEGATE_JWKS_URL: none is set and local mode is off (DATABASE_URL is set): set one of them, or RELEASEGATE_LOCAL_MODE=true to sign tokens with a secret created in DATA_DIR\n",
    );
  });

  it("exits 2 naming RELEASEGATE_JWKS_URL when it is plain http to another host", async () => {
    const { code, stderr } = await runServer({ RELEASEGATE_JWKS_URL: "http://idp.example/jwks" });
    expect(code).toBe(2);
    expect(stderr).toBe(
      "config error: RELEASEGATE_JWKS_URL: must use https:// (plain http:// only to a loopback host: localhost, 127.0.0.0/8, ::1)\n",
    );
  });

  it("starts on Postgres without a key with RELEASEGATE_LOCAL_MODE=true, verifying tokens with the DATA_DIR secret", async () => {
    const database = await createPostgresDatabase();
    const dir = mkdtempSync(join(tmpdir(), "rg-local-pg-"));
    try {
      let answered = false;
      const { code, stderr } = await runServer(
        { DATABASE_URL: database.url, RELEASEGATE_LOCAL_MODE: "true", DATA_DIR: dir },
        async (lines) => {
          const deadline = Date.now() + 45_000;
          let listening: Record<string, unknown> | undefined;
          while (listening === undefined) {
            if (Date.now() > deadline) throw new Error(`the server did not listen: ${JSON.stringify(lines())}`);
            await new Promise((r) => setTimeout(r, 50));
            listening = lines().find((l) => String(l.msg).startsWith("releasegate listening"));
          }
          expect(lines()).toEqual(
            expect.arrayContaining([expect.objectContaining({ msg: expect.stringMatching(/^no JWT key configured: local mode/) })]),
          );
          const secret = readFileSync(join(dir, LOCAL_SECRET_FILE), "utf8").trim();
          const admin = await mintToken(secret, { sub: "ada", orgRoles: { acme: "admin" } });
          const client = createClient(PolicyService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${listening.port}` }));
          const { policies } = await client.listPolicies(
            { project },
            { headers: { authorization: `Bearer ${admin}` } },
          );
          expect(policies).toEqual([]);
          answered = true;
        },
      );
      expect(answered, stderr).toBe(true);
      expect(code, stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await database.drop();
    }
  });
});

describe("the token verifier of a hand-built config", () => {
  it("refuses to make up a secret when no key is configured and local mode is not on", async () => {
    await expect(createTokenVerifier({ algorithm: "RS256" }, "/nonexistent")).rejects.toThrow(
      "no JWT key configured and local mode is off: set RELEASEGATE_JWT_SECRET, RELEASEGATE_JWT_PUBLIC_KEY or RELEASEGATE_JWKS_URL, or RELEASEGATE_LOCAL_MODE=true",
    );
  });
});
