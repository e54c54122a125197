import { randomBytes } from "node:crypto";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { type Database, openDatabase, wrapPglite } from "../../src/db/database.js";
import { migrateToLatest } from "../../src/db/migrate.js";

/** The Postgres the machine runs; tests create their own databases on it. */
export const ADMIN_DATABASE_URL =
  process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Which engine the general tests use: RELEASEGATE_TEST_DB, else postgres when DATABASE_URL is set. */
export function testDatabaseKind(): "postgres" | "pglite" {
  const forced = process.env.RELEASEGATE_TEST_DB;
  if (forced === "pglite" || forced === "postgres") return forced;
  return process.env.DATABASE_URL !== undefined ? "postgres" : "pglite";
}

export interface TestDatabase {
  readonly database: Database;
  /** Connection URL (Postgres only): for a second server or a raw client. */
  readonly url?: string;
  dispose(): Promise<void>;
}

/** Creates an empty, uniquely named Postgres database; returns its URL and a drop function. */
export async function createPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `rg_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A fresh, migrated database of the chosen kind, isolated to the caller. */
export async function createTestDatabase(
  kind: "postgres" | "pglite" = testDatabaseKind(),
  poolSize = 10,
): Promise<TestDatabase> {
  if (kind === "pglite") {
    const database = wrapPglite(await PGlite.create());
    await migrateToLatest(database.db);
    return { database, dispose: () => database.destroy() };
  }
  const { url, drop } = await createPostgresDatabase();
  const database = await openDatabase({ databaseUrl: url, dataDir: "/nonexistent", poolSize });
  await migrateToLatest(database.db);
  return {
    database,
    url,
    async dispose() {
      await database.destroy();
      await drop();
    },
  };
}
