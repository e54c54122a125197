import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_SECRET_FILE, mintToken } from "../src/auth/token-verifier.js";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer, token } from "./support/server.js";

// The built CLI signing in like gh: every run gets a HOME of its own and no
// CLI variables from the test's shell, so nothing here reads or writes the
// real ~/.config. Each test spawns several CLI processes: on a loaded 2-core
// machine one takes seconds, hence the 60 s per test.

let server: TestServer;
let local: TestServer;
let localDataDir: string;
let root: string;
let ada: string;
let bob: string;
let closedPort: number;
let silent: Server;
const version = (JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version;

/** A fresh home for one scenario; its XDG config path is where login must write. */
function home(name: string) {
  const dir = join(root, name);
  mkdirSync(dir);
  const env: Record<string, string> = {
    HOME: dir,
    XDG_CONFIG_HOME: "",
    RELEASEGATE_CONFIG: "",
    RELEASEGATE_SERVER: "",
    RELEASEGATE_TOKEN: "",
    RELEASEGATE_JWT_SECRET: "",
    DATA_DIR: join(dir, "no-server-here"),
  };
  return { dir, env, configFile: join(dir, ".config", "releasegate", "config.json") };
}

const hostPort = (s: TestServer) => `127.0.0.1:${s.app.port}`;

beforeAll(async () => {
  await ensureBuilt();
  root = mkdtempSync(join(tmpdir(), "rg-cli-login-"));
  server = await startTestServer();
  localDataDir = join(root, "local-data");
  // A local-mode server: no JWT key, its secret created under its DATA_DIR.
  local = await startTestServer({ env: { RELEASEGATE_JWT_SECRET: "", DATA_DIR: localDataDir } });
  ada = await token({ sub: "ada", name: "Ada", orgs: { acme: "admin", beta: "member" }, groups: ["sre"] });
  bob = await token({ sub: "bob", orgs: { acme: "member" } });
  // A port nobody listens on, and a server that accepts connections but never answers.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  silent = createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
}, 240_000);
afterAll(async () => {
  await server?.stop();
  await local?.stop();
  silent?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("releasegate --version", { timeout: 60_000 }, () => {
  it.each([["--version"], ["-V"]])("%s prints package.json's version and exits 0", async (flag) => {
    expect(await runCli([flag])).toEqual({ code: 0, stdout: `releasegate ${version}\n`, stderr: "" });
  });
});

describe("login, whoami, logout", { timeout: 60_000 }, () => {
  it("login --token with a scheme-less --server verifies, saves 0600 in a 0700 dir, and whoami shows the caller", async () => {
    const h = home("login-token");
    const login = await runCli(["login", "--server", hostPort(server), "--token", ada], h.env);
    expect(login.stdout).toBe(`signed in to ${server.baseUrl} as ada (Ada)\n`);
    expect(login.stderr).toBe(`token saved in ${h.configFile}\n`);
    expect(login.code).toBe(0);
    expect(statSync(h.configFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(h.dir, ".config", "releasegate")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(h.configFile, "utf8"))).toEqual({
      server: server.baseUrl,
      tokens: { [server.baseUrl]: ada },
    });

    const who = await runCli(["whoami"], h.env);
    expect(who.stderr).toBe("");
    expect(who.code).toBe(0);
    expect(who.stdout).toMatch(new RegExp(`^SERVER\\s+${server.baseUrl}\\n`));
    expect(who.stdout).toMatch(/\nSUBJECT\s+ada\n/);
    expect(who.stdout).toMatch(/\nUSERNAME\s+Ada\n/);
    expect(who.stdout).toMatch(/\nORGANISATIONS\s+acme=admin, beta=member\n/);
    expect(who.stdout).toMatch(/\nGROUPS\s+sre\n/);
    expect(who.stdout).toContain(`TOKEN FROM     config file ${h.configFile}`);

    const json = await runCli(["-o", "json", "whoami"], h.env);
    expect(JSON.parse(json.stdout)).toMatchObject({
      server: server.baseUrl,
      subject: "ada",
      username: "Ada",
      actorType: "user",
      organisations: { acme: "admin", beta: "member" },
    });

    // Every client command now uses the saved server and token.
    const list = await runCli(["-o", "json", "policy", "list", "--project", "acme/cli-login"], h.env);
    expect(list).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(list.stdout)).toEqual({ policies: [] });
  });

  it("logout removes the token: whoami then exits 4 saying how to sign in", async () => {
    const h = home("logout");
    expect((await runCli(["login", "--server", server.baseUrl, "--token", bob], h.env)).code).toBe(0);
    const out = await runCli(["logout"], h.env);
    expect(out).toMatchObject({ code: 0, stdout: `signed out of ${server.baseUrl}\n` });
    expect(JSON.parse(readFileSync(h.configFile, "utf8"))).toEqual({ server: server.baseUrl, tokens: {} });
    expect(statSync(h.configFile).mode & 0o777).toBe(0o600);
    const who = await runCli(["whoami"], h.env);
    expect(who.code).toBe(4);
    expect(who.stderr).toBe(
      `error: not signed in to ${server.baseUrl}: run \`releasegate login --server ${server.baseUrl}\` (or set RELEASEGATE_TOKEN)\n`,
    );
    expect(await runCli(["logout"], h.env)).toMatchObject({ code: 0, stdout: `not signed in to ${server.baseUrl}: nothing to remove\n` });
  });

  it("login --token-stdin reads the token from standard input", async () => {
    const h = home("stdin");
    const login = await runCli(["login", "--server", server.baseUrl, "--token-stdin"], h.env, `${bob}\n`);
    expect(login).toMatchObject({ code: 0, stdout: `signed in to ${server.baseUrl} as bob\n` });
    expect(JSON.parse(readFileSync(h.configFile, "utf8")).tokens[server.baseUrl]).toBe(bob);
    const empty = await runCli(["login", "--server", server.baseUrl, "--token-stdin"], h.env, "\n");
    expect(empty).toMatchObject({ code: 2, stderr: "error: --token-stdin: standard input was empty\n" });
  });

  it("a token the server refuses exits 4 and saves nothing", async () => {
    const h = home("refused");
    const forged = await mintToken("another-secret-that-is-at-least-32-characters", { sub: "eve", orgRoles: { acme: "admin" } });
    const login = await runCli(["login", "--server", server.baseUrl, "--token", forged], h.env);
    expect(login.code).toBe(4);
    expect(login.stderr).toBe(
      `error: the server at ${server.baseUrl} refused the token (invalid token (bad signature)); nothing was saved\n`,
    );
    expect(existsSync(h.configFile)).toBe(false);
  });

  it("login without a token, or with two, is a usage error (exit 2)", async () => {
    const h = home("no-token");
    const none = await runCli(["login", "--server", server.baseUrl], h.env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^error: login needs a token: --token T, --token-stdin .*, or --local --sub ID/);
    const two = await runCli(["login", "--token", bob, "--token-stdin"], h.env, bob);
    expect(two).toMatchObject({ code: 2, stderr: "error: --token and --token-stdin exclude each other: give one\n" });
    const sub = await runCli(["login", "--token", bob, "--sub", "x"], h.env);
    expect(sub).toMatchObject({ code: 2, stderr: "error: --sub needs --local\n" });
  });

  it("login --local mints with the local-mode server's secret in DATA_DIR", async () => {
    const h = home("local");
    const env = { ...h.env, DATA_DIR: localDataDir };
    const login = await runCli(["login", "--local", "--server", hostPort(local), "--sub", "u-alice", "--org", "acme=member"], env);
    expect(login.stderr).toBe(`signed with ${join(localDataDir, LOCAL_SECRET_FILE)}\ntoken saved in ${h.configFile}\n`);
    expect(login).toMatchObject({ code: 0, stdout: `signed in to ${local.baseUrl} as u-alice\n` });
    const who = await runCli(["-o", "json", "whoami"], h.env);
    expect(JSON.parse(who.stdout)).toMatchObject({ subject: "u-alice", organisations: { acme: "member" } });
  });

  it("login --local against a server with another key exits 4 naming the secret it signed with", async () => {
    const h = home("local-elsewhere");
    const secret = join(localDataDir, LOCAL_SECRET_FILE);
    const login = await runCli(["login", "--local", "--server", server.baseUrl, "--sub", "u-alice"], { ...h.env, DATA_DIR: localDataDir });
    expect(login.code).toBe(4);
    expect(login.stderr).toBe(
      `signed with ${secret}\nerror: the server at ${server.baseUrl} refused the token (invalid token (bad signature)); nothing was saved; ` +
        `it was signed with ${secret}: is that this server's key? Run login where the server runs, or set DATA_DIR (or RELEASEGATE_JWT_SECRET) to the server's\n`,
    );
    expect(existsSync(h.configFile)).toBe(false);
  });

  it("XDG_CONFIG_HOME, then RELEASEGATE_CONFIG, choose the config file", async () => {
    const h = home("paths");
    const xdg = join(h.dir, "xdg");
    expect((await runCli(["login", "-s", server.baseUrl, "-t", bob], { ...h.env, XDG_CONFIG_HOME: xdg })).code).toBe(0);
    expect(statSync(join(xdg, "releasegate", "config.json")).mode & 0o777).toBe(0o600);
    const custom = join(h.dir, "elsewhere", "rg.json");
    const env = { ...h.env, XDG_CONFIG_HOME: xdg, RELEASEGATE_CONFIG: custom };
    expect((await runCli(["login", "-s", server.baseUrl, "-t", ada], env)).code).toBe(0);
    expect(JSON.parse(readFileSync(custom, "utf8")).tokens[server.baseUrl]).toBe(ada);
    expect(existsSync(h.configFile)).toBe(false);
    // The XDG file still holds bob: each path is a config of its own.
    expect(JSON.parse((await runCli(["-o", "json", "whoami"], { ...h.env, XDG_CONFIG_HOME: xdg })).stdout).subject).toBe("bob");
  });

  it("a corrupt config file is a usage error naming the file, unless flags or variables say it all", async () => {
    const h = home("corrupt");
    mkdirSync(join(h.dir, ".config", "releasegate"), { recursive: true });
    writeFileSync(h.configFile, "{not json");
    const who = await runCli(["whoami"], h.env);
    expect(who).toMatchObject({ code: 2, stderr: `error: ${h.configFile} is not JSON: fix it or delete it and run \`releasegate login\` again\n` });
    // A pipeline that sets server and token never reads the file.
    const piped = await runCli(["whoami"], { ...h.env, RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: bob });
    expect(piped).toMatchObject({ code: 0, stderr: "" });
  });
});

describe("precedence: flag > environment > config file", { timeout: 60_000 }, () => {
  it("RELEASEGATE_TOKEN beats the saved token and --token beats both", async () => {
    const h = home("token-precedence");
    expect((await runCli(["login", "--server", server.baseUrl, "--token", ada], h.env)).code).toBe(0);
    const whoIs = async (args: string[], env: Record<string, string>) => {
      const res = await runCli(["-o", "json", ...args, "whoami"], env);
      expect(res.stderr).toBe("");
      return JSON.parse(res.stdout) as { subject: string; tokenFrom: string };
    };
    expect(await whoIs([], h.env)).toMatchObject({ subject: "ada", tokenFrom: `config file ${h.configFile}` });
    const envBob = { ...h.env, RELEASEGATE_TOKEN: bob };
    expect(await whoIs([], envBob)).toMatchObject({ subject: "bob", tokenFrom: "RELEASEGATE_TOKEN" });
    const carol = await token({ sub: "carol", orgs: { acme: "member" } });
    expect(await whoIs(["--token", carol], envBob)).toMatchObject({ subject: "carol", tokenFrom: "--token" });
  });

  it("RELEASEGATE_SERVER beats the saved server and --server beats both", async () => {
    const h = home("server-precedence");
    expect((await runCli(["login", "--server", server.baseUrl, "--token", ada], h.env)).code).toBe(0);
    const closed = `127.0.0.1:${closedPort}`;
    const viaEnv = await runCli(["whoami"], { ...h.env, RELEASEGATE_SERVER: closed, RELEASEGATE_TOKEN: ada });
    expect(viaEnv.code).toBe(5);
    expect(viaEnv.stderr).toContain(`server unreachable at http://${closed} (ECONNREFUSED)`);
    const viaFlag = await runCli(["--server", server.baseUrl, "whoami"], { ...h.env, RELEASEGATE_SERVER: closed });
    expect(viaFlag.code).toBe(0);
  });

  it("a saved token goes only to the server it was saved for", async () => {
    const h = home("per-server");
    expect((await runCli(["login", "--server", server.baseUrl, "--token", ada], h.env)).code).toBe(0);
    const other = await runCli(["--server", hostPort(local), "whoami"], h.env);
    expect(other.code).toBe(4);
    expect(other.stderr).toBe(
      `error: not signed in to ${local.baseUrl}: run \`releasegate login --server ${local.baseUrl}\` (or set RELEASEGATE_TOKEN)\n`,
    );
  });
});

describe("exit codes of client commands", { timeout: 60_000 }, () => {
  const P = ["--project", "acme/cli-exits"];

  it("0 passed and 1 not passed: policy evaluate", async () => {
    const env = { ...home("exit-01").env, RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: ada };
    expect((await runCli(["policy", "create", "gate", ...P, "--type", "approval", "--target", "prod", "--required", "1"], env)).code).toBe(0);
    const intent = (await runCli(["intent", "register", ...P, "--branch", "main", "--version", "1.0.0"], env)).stdout.trim();
    const blocked = await runCli(["policy", "evaluate", ...P, "--env", "prod", "--intent", intent], env);
    expect(blocked.code).toBe(1);
    expect(blocked.stdout).toMatch(/gate\s+external_approval\s+BLOCK/);
    expect((await runCli(["approve", ...P, "--intent", intent, "--env", "prod"], { ...env, RELEASEGATE_TOKEN: bob })).code).toBe(0);
    expect((await runCli(["policy", "evaluate", ...P, "--env", "prod", "--intent", intent], env)).code).toBe(0);
  });

  it("2: a malformed server address names where it came from", async () => {
    const h = home("exit-2");
    const flag = await runCli(["--server", "http://[oops", "whoami"], h.env);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe(
      'error: --server "http://[oops": not a server address; expected HOST:PORT or http(s)://HOST:PORT, e.g. localhost:50051\n',
    );
    const variable = await runCli(["whoami"], { ...h.env, RELEASEGATE_SERVER: "ftp://x:1" });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toMatch(/^error: RELEASEGATE_SERVER "ftp:\/\/x:1": unsupported scheme ftp/);
  });

  it("an address on port 443 without a scheme means https", async () => {
    const res = await runCli(["--server", "rg.invalid:443", "whoami"], home("https").env);
    expect(res.code).toBe(4);
    expect(res.stderr).toContain("error: not signed in to https://rg.invalid: run `releasegate login --server https://rg.invalid`");
  });

  it("3: the server answered an error, PERMISSION_DENIED included", async () => {
    const env = { ...home("exit-3").env, RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: bob };
    const denied = await runCli(["policy", "delete", "gate", ...P], env);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toBe("error: PERMISSION_DENIED: member bob may not policy.write in organisation acme\n");
  });

  it("4: no token, or a token the server refuses", async () => {
    const h = home("exit-4");
    const none = await runCli(["policy", "list", ...P, "--server", server.baseUrl], h.env);
    expect(none.code).toBe(4);
    expect(none.stderr).toMatch(/^error: not signed in to http:\/\/127\.0\.0\.1:\d+: run `releasegate login --server /);
    const expired = await token({ sub: "ada", orgs: { acme: "admin" }, expiresIn: "-1m" });
    const refused = await runCli(["policy", "list", ...P], { ...h.env, RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: expired });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toBe(
      `error: UNAUTHENTICATED: invalid token (expired)\nthe server at ${server.baseUrl} refused the token: run \`releasegate login --server ${server.baseUrl}\` (or set RELEASEGATE_TOKEN)\n`,
    );
  });

  it("5: connection refused, or no answer within --timeout", async () => {
    const env = { ...home("exit-5").env, RELEASEGATE_TOKEN: ada };
    const refused = await runCli(["--server", `localhost:${closedPort}`, "policy", "list", ...P], env);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toBe(
      `error: server unreachable at http://localhost:${closedPort} (ECONNREFUSED): is it running? (\`npm start\`); check --server / RELEASEGATE_SERVER\n`,
    );
    const port = (silent.address() as { port: number }).port;
    const mute = await runCli(["--timeout", "1", "--server", `127.0.0.1:${port}`, "policy", "list", ...P], env);
    expect(mute.code).toBe(5);
    expect(mute.stderr).toContain(`server unreachable at http://127.0.0.1:${port} (timed out)`);
  });
});

describe("releasegate token finds the server's secret and never makes one", { timeout: 60_000 }, () => {
  it("signs with DATA_DIR/jwt-secret of the local-mode server, says so, and the server accepts it", async () => {
    const env = { ...home("token-local").env, DATA_DIR: localDataDir };
    const minted = await runCli(["token", "--sub", "u-dev", "--org", "acme=admin"], env);
    expect(minted.stderr).toBe(`signed with ${join(localDataDir, LOCAL_SECRET_FILE)}\n`);
    expect(minted.code).toBe(0);
    const list = await runCli(["policy", "list", "--project", "acme/x", "--server", local.baseUrl], {
      ...env,
      RELEASEGATE_TOKEN: minted.stdout.trim(),
    });
    expect(list).toMatchObject({ code: 0, stderr: "" });
  });

  it("without a secret file exits 2 with what to do, and creates nothing", async () => {
    const h = home("token-none");
    const dataDir = join(h.dir, "data");
    const res = await runCli(["token", "--sub", "u-dev"], { ...h.env, DATA_DIR: dataDir });
    expect(res.code).toBe(2);
    expect(res.stdout).toBe("");
    expect(res.stderr).toContain(`error: no local-mode secret at ${join(dataDir, LOCAL_SECRET_FILE)} (DATA_DIR=${dataDir})`);
    expect(res.stderr).toContain("start the server once in local mode with the same DATA_DIR");
    expect(res.stderr).toContain("--secret-file PATH / set RELEASEGATE_JWT_SECRET");
    expect(existsSync(dataDir)).toBe(false);
  });

  it("RELEASEGATE_JWT_SECRET or --secret-file sign instead, and say so", async () => {
    const h = home("token-secret");
    const viaEnv = await runCli(["token", "--sub", "ci", "--service"], { ...h.env, RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET });
    expect(viaEnv).toMatchObject({ code: 0, stderr: "signed with RELEASEGATE_JWT_SECRET\n" });
    const who = await runCli(["-o", "json", "whoami"], { ...h.env, RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: viaEnv.stdout.trim() });
    expect(JSON.parse(who.stdout)).toMatchObject({ subject: "ci", actorType: "service" });
    const file = join(localDataDir, LOCAL_SECRET_FILE);
    const viaFile = await runCli(["token", "--secret-file", file], h.env);
    expect(viaFile).toMatchObject({ code: 0, stderr: `signed with ${file}\n` });
  });
});
