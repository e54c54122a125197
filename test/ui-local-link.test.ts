import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { waitFor } from "./support/approval-fixtures.js";
import { launchBrowser, newPerson } from "./support/browser.js";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { freePort } from "./support/pg-cluster.js";

// A browser scenario is a few page loads and RPCs each bounded by PAGE_TIMEOUT_MS; on a loaded 2-core machine the whole may take a minute.
vi.setConfig({ testTimeout: 90_000 });

// What a newcomer runs: `npm start` (the built server, local mode on the
// embedded database, the page from dist/ui) and `releasegate ui`.
let child: ChildProcess;
let dataDir: string;
let baseUrl: string;
let browser: Browser;

/** The environment without the machine's database or any JWT key: local mode, as on a fresh clone. */
function newcomerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ["DATABASE_URL", "RELEASEGATE_JWT_SECRET", "RELEASEGATE_JWT_PUBLIC_KEY", "RELEASEGATE_JWKS_URL", "NATS_URL"])
    delete env[name];
  return env;
}

beforeAll(async () => {
  await ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), "rg-ui-local-"));
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ["dist/src/main.js"], {
    env: newcomerEnv({ HOST: "127.0.0.1", PORT: String(port), METRICS_PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: "warn" }),
    stdio: ["ignore", "ignore", "inherit"],
  });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
      return fetch(`${baseUrl}/ui/config.json`).then(
        (r) => (r.ok ? true : undefined),
        () => undefined,
      );
    },
    60_000,
    "the built server to serve the page",
  );
  browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe("local mode: releasegate ui prints a sign-in link", () => {
  it("the built server serves the page from dist/ui and says it is in local mode", async () => {
    const res = await fetch(`${baseUrl}/ui/config.json`);
    expect(await res.json()).toEqual({ localMode: true });
    const page = await fetch(`${baseUrl}/ui/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<script type="module" src="main-[A-Z0-9]+\.js"><\/script>/);
  });

  it("the link signs the person in: the token moves to sessionStorage and out of the address bar", async () => {
    const out = await runCli(["--server", baseUrl, "ui", "--sub", "u-alice", "--name", "Alice", "--org", "acme=member"], {
      DATA_DIR: dataDir,
      RELEASEGATE_JWT_SECRET: "",
    });
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const link = out.stdout.trim();
    expect(link.startsWith(`${baseUrl}/ui/#token=`)).toBe(true);
    const page = await newPerson(browser);
    await page.goto(link);
    await page.locator("#who .user").filter({ hasText: "Alice" }).waitFor();
    await page.getByRole("heading", { level: 1, name: "Inbox" }).waitFor();
    expect(page.url()).toBe(`${baseUrl}/ui/#/inbox`);
    expect(await page.evaluate("sessionStorage.getItem('releasegate.source')")).toBe("local");
    // The inbox answered with the local token: the server accepted it.
    await page.getByText("Nothing waits for your approval.").waitFor();
    await page.context().close();
  });

  it("a server address without a scheme works, and --open deep-links", async () => {
    const out = await runCli(
      ["--server", baseUrl.replace("http://", ""), "ui", "--sub", "u-bob", "--open", "/policies?org=acme&project=web"],
      { DATA_DIR: dataDir, RELEASEGATE_JWT_SECRET: "" },
    );
    expect(out.code).toBe(0);
    const link = new URL(out.stdout.trim());
    expect(link.origin).toBe(baseUrl);
    expect(new URLSearchParams(link.hash.slice(1)).get("next")).toBe("#/policies?org=acme&project=web");
  });

  it("a malformed --org is a usage error (exit 2) naming the flag", async () => {
    const out = await runCli(["--server", baseUrl, "ui", "--org", "acme=owner"], { DATA_DIR: dataDir, RELEASEGATE_JWT_SECRET: "" });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/--org acme=owner: expected ORG=ROLE/);
  });
});
