import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "./support/build.js";
import { createPostgresDatabase } from "./support/database.js";
import { waitFor } from "./support/grpc-js.js";
import { TEST_JWT_SECRET } from "./support/server.js";

const RECORDER = join(import.meta.dirname, "support", "record-packages.mjs");

/**
 * Starts the built server with the package recorder preloaded, waits until
 * it listens, stops it with SIGTERM and returns the npm packages it loaded.
 */
async function packagesLoadedBy(env: Record<string, string>, dir: string): Promise<string[]> {
  const out = join(dir, `packages-${Date.now()}.json`);
  const child: ChildProcess = spawn(process.execPath, ["--import", RECORDER, "dist/src/main.js"], {
    env: { PATH: process.env.PATH ?? "", RECORD_PACKAGES_TO: out, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  await waitFor(() => stdout.includes("releasegate listening") || child.exitCode !== null, 60_000, "the server to listen");
  if (child.exitCode !== null) throw new Error(`server exited before listening: ${stderr}`);
  child.kill("SIGTERM");
  expect(await exited).toBe(0);
  return JSON.parse(readFileSync(out, "utf8")) as string[];
}

describe("the built server's loaded modules", () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let dir: string;
  beforeAll(async () => {
    await ensureBuilt();
    database = await createPostgresDatabase();
    dir = mkdtempSync(join(tmpdir(), "rg-footprint-"));
  }, 240_000);
  afterAll(async () => {
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("on Postgres with JSON logs, loads neither PGlite nor pino-pretty", async () => {
    const packages = await packagesLoadedBy(
      {
        HOST: "127.0.0.1",
        PORT: "0",
        METRICS_PORT: "0",
        DATABASE_URL: database.url,
        DATA_DIR: dir,
        RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
        LOG_FORMAT: "json",
      },
      dir,
    );
    // The recorder saw the packages the server does use (else the check below proves nothing).
    expect(packages).toEqual(expect.arrayContaining(["pg", "pino", "kysely", "@connectrpc/connect-node"]));
    expect(packages).not.toContain("@electric-sql/pglite");
    expect(packages).not.toContain("pino-pretty");
  }, 90_000);
});
