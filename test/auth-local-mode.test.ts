import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_SECRET_FILE, mintToken } from "../src/auth/token-verifier.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { createLogger } from "../src/logger.js";
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
      stderr: expect.stringContaining("--org acme=owner: expected ORG=member or ORG=admin"),
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
