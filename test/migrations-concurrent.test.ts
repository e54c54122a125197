import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultMigrationsDir } from "../src/db/migrate.js";
import { createPostgresDatabase } from "./support/database.js";
import { schemaSnapshot, tableNames } from "./support/schema.js";

// Replicas starting at once: separate OS processes (scripts/migrate.ts, the
// same code the server runs at start) migrate one fresh Postgres database
// concurrently. Kysely's Migrator serialises them with its lock.

const run = promisify(execFile);
const TSX = join(process.cwd(), "node_modules/.bin/tsx");
const PROCESSES = 3;

let target: { url: string; drop: () => Promise<void> };
let db: Kysely<unknown>;

beforeAll(async () => {
  target = await createPostgresDatabase();
  db = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: target.url, max: 2 }) }) });
});
afterAll(async () => {
  await db?.destroy();
  await target?.drop();
});

function migrateProcess() {
  return run(TSX, ["scripts/migrate.ts"], {
    env: { ...process.env, DATABASE_URL: target.url, LOG_LEVEL: "silent" },
    timeout: 60_000,
  });
}

// Child processes start slowly on a loaded 2-core machine.
describe("migrations from concurrent processes", { timeout: 60_000 }, () => {
  it(`${PROCESSES} processes migrating a fresh database at once all succeed with one schema`, async () => {
    const results = await Promise.allSettled(Array.from({ length: PROCESSES }, migrateProcess));
    for (const r of results) expect(r.status, r.status === "rejected" ? String(r.reason) : "").toBe("fulfilled");
    const outputs = results.map((r) => (r as PromiseFulfilledResult<{ stdout: string }>).value.stdout.trim());
    // Exactly one process applied the migrations; the others found them applied.
    expect(outputs.filter((o) => /: applied 0001_/.test(o))).toHaveLength(1);
    expect(outputs.filter((o) => o.endsWith(": schema up to date"))).toHaveLength(PROCESSES - 1);

    const files = readdirSync(defaultMigrationsDir()).filter((f) => f.endsWith(".sql"));
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
    expect(rows.map((r) => r.name)).toEqual(files.sort().map((f) => f.replace(/\.sql$/, "")));
    expect(await tableNames(db)).toEqual(expect.arrayContaining(["policies", "release_intents", "deployments"]));
  });

  it("a restart (another run) applies nothing and leaves the schema as it was", async () => {
    const before = await schemaSnapshot(db);
    const { stdout } = await migrateProcess();
    expect(stdout.trim()).toMatch(/: schema up to date$/);
    expect(await schemaSnapshot(db)).toEqual(before);
  });

  it("exits 2 with one line per configuration problem", async () => {
    await expect(
      run(TSX, ["scripts/migrate.ts"], { env: { ...process.env, DATABASE_URL: "mysql://nope", DB_POOL_SIZE: "x" } }),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        "config error: DATABASE_URL: must be a postgres:// or postgresql:// URL\nconfig error: DB_POOL_SIZE: must be a positive integer\n",
      ),
    });
  });
});
