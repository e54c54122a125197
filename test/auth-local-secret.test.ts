import { fork } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LOCAL_SECRET_FILE, loadOrCreateLocalSecret } from "../src/auth/token-verifier.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rg-secret-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("loadOrCreateLocalSecret", { timeout: 60_000 }, () => {
  it("creates a 256-bit secret readable only by the owner, then reuses it", () => {
    const first = loadOrCreateLocalSecret(join(dir, "nested"));
    expect(first.created).toBe(true);
    expect(first.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const path = join(dir, "nested", LOCAL_SECRET_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadOrCreateLocalSecret(join(dir, "nested"))).toEqual({ secret: first.secret, created: false });
    // No temporary files left behind.
    expect(readdirSync(join(dir, "nested"))).toEqual([LOCAL_SECRET_FILE]);
  });

  it("refuses an empty or short secret file instead of signing with it", () => {
    writeFileSync(join(dir, LOCAL_SECRET_FILE), "\n");
    expect(() => loadOrCreateLocalSecret(dir)).toThrow(
      `${join(dir, LOCAL_SECRET_FILE)}: local JWT secret is shorter than 32 characters; delete the file to create a new one`,
    );
  });

  it("gives processes starting together one and the same secret", async () => {
    const script = `
      import { loadOrCreateLocalSecret } from ${JSON.stringify(join(process.cwd(), "src/auth/token-verifier.ts"))};
      process.send(loadOrCreateLocalSecret(process.argv[2]));
    `;
    const file = join(dir, "child.mts");
    writeFileSync(file, script);
    const data = join(dir, "data");
    const results = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<{ secret: string; created: boolean }>((resolve, reject) => {
            const child = fork(file, [data], { execArgv: ["--import", "tsx"], stdio: ["ignore", "ignore", "pipe", "ipc"] });
            child.once("message", (m) => resolve(m as { secret: string; created: boolean }));
            child.once("error", reject);
            child.once("exit", (code) => code !== 0 && reject(new Error(`child exited ${code}`)));
          }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const onDisk = readFileSync(join(data, LOCAL_SECRET_FILE), "utf8").trim();
    for (const r of results) expect(r.secret).toBe(onDisk);
  });
});
