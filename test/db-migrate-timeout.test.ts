import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../src/app.js";
import { openDatabase } from "../src/db/database.js";
import { migrateDatabase } from "../src/db/migrate.js";
import { waitFor } from "./support/approval-fixtures.js";
import { createPostgresDatabase } from "./support/database.js";
import { testConfig } from "./support/server.js";

// Pool connections carry statement_timeout = RPC_TIMEOUT_MS; migrations at
// start must not: an index build, or the wait for another replica's
// migration lock, may take longer than any RPC.

const RPC_TIMEOUT_MS = 200;
/** Kysely's migration lock on Postgres (a session `pg_advisory_lock` with this id: kysely/dist/esm/dialect/postgres/postgres-adapter.js). */
const KYSELY_MIGRATION_LOCK_ID = "3853314791062309107";

let pgdb: { url: string; drop: () => Promise<void> };
const dirs: string[] = [];
beforeAll(async () => {
  pgdb = await createPostgresDatabase();
});
afterAll(async () => {
  await pgdb?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("migrations and statement_timeout (Postgres)", () => {
  it("runs a migration longer than the pool's statement_timeout, while a pooled query of that length is cancelled", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rg-migrations-"));
    dirs.push(dir);
    writeFileSync(join(dir, "0001_slow.sql"), "SELECT pg_sleep(0.6);\nCREATE TABLE IF NOT EXISTS slow_done (id int);\n");
    const { url, drop } = await createPostgresDatabase();
    const database = await openDatabase({
      databaseUrl: url,
      dataDir: "/nonexistent",
      poolSize: 2,
      statementTimeoutMs: RPC_TIMEOUT_MS,
    });
    try {
      expect(await migrateDatabase(database, dir)).toEqual(["0001_slow"]);
      await sql`select 1 from slow_done`.execute(database.db);
      await expect(sql`select pg_sleep(0.6)`.execute(database.db)).rejects.toMatchObject({ code: "57014" });
    } finally {
      await database.destroy();
      await drop();
    }
  });

  it("starts a server whose migrations wait for another replica's migration lock longer than RPC_TIMEOUT_MS", async () => {
    const other = new pg.Client({ connectionString: pgdb.url });
    await other.connect();
    // Activity is read from a session outside any transaction (inside one, pg_stat_activity is a snapshot).
    const observer = new pg.Client({ connectionString: pgdb.url });
    await observer.connect();
    const dataDir = mkdtempSync(join(tmpdir(), "rg-test-"));
    dirs.push(dataDir);
    const app = new App({
      config: testConfig(dataDir, { DATABASE_URL: pgdb.url, RPC_TIMEOUT_MS: String(RPC_TIMEOUT_MS) }),
      logger: pino({ level: "silent" }),
    });
    try {
      // Another replica is migrating: it holds the migrator's lock.
      await other.query("begin");
      await other.query(`select pg_advisory_xact_lock(${KYSELY_MIGRATION_LOCK_ID})`);
      const started = app.start();
      const failed = started.then(
        () => undefined,
        (err: unknown) => err,
      );
      // Bounded: the server's wait for the lock has lasted well past RPC_TIMEOUT_MS (or start failed).
      await waitFor(
        async () => {
          if ((await Promise.race([failed, Promise.resolve("pending")])) !== "pending") return true;
          return (await waitedLongerThan(observer, 3 * RPC_TIMEOUT_MS)) ? true : undefined;
        },
        15_000,
        "the server to wait for the migration lock",
      );
      await other.query("commit");
      await started;
      expect(app.database.kind).toBe("postgres");
      // Ordinary pooled queries still have the RPC timeout.
      await expect(sql`select pg_sleep(0.6)`.execute(app.database.db)).rejects.toMatchObject({ code: "57014" });
    } finally {
      await other.query("rollback").catch(() => undefined);
      await other.end();
      await observer.end();
      await app.stop(500);
    }
  });
});

/** Whether a session of this database has waited for an advisory lock for longer than `ms`. */
async function waitedLongerThan(client: pg.Client, ms: number): Promise<boolean> {
  const { rows } = await client.query<{ waited: boolean }>(
    `select coalesce(bool_or(clock_timestamp() - a.query_start > make_interval(secs => $1::float8 / 1000)), false) as waited
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and not l.granted and a.datname = current_database()`,
    [ms],
  );
  return rows[0]?.waited === true;
}
