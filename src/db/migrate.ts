import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from "kysely";
import type { Database } from "./database.js";
import type { DB } from "./schema.js";
import { splitSqlStatements } from "./sql-script.js";

/** Finds the top-level `migrations/` folder from src/ or from dist/src/. */
export function defaultMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "migrations");
    if (existsSync(join(dir, "package.json")) && existsSync(candidate)) return candidate;
    dir = resolve(dir, "..");
  }
  throw new Error(`migrations/ folder not found above ${fileURLToPath(import.meta.url)}`);
}

/** Serves each `NNNN_name.sql` file as one migration (up only; we roll forward). */
export class SqlFileMigrationProvider implements MigrationProvider {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
  }
  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.#dir)).filter((f) => f.endsWith(".sql")).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const statements = splitSqlStatements(await readFile(join(this.#dir, file), "utf8"));
      migrations[file.replace(/\.sql$/, "")] = {
        async up(db: Kysely<unknown>) {
          for (const statement of statements) await sql.raw(statement).execute(db);
        },
      };
    }
    return migrations;
  }
}

export class MigrationError extends Error {
  override readonly name = "MigrationError";
}

/**
 * Applies pending migrations. Kysely's Migrator takes a lock (an advisory lock
 * on Postgres) so replicas starting together apply each migration once.
 * Returns the names applied by this call.
 */
export async function migrateToLatest(db: Kysely<DB>, dir = defaultMigrationsDir()): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: new SqlFileMigrationProvider(dir),
    // Engineers add migrations on parallel branches; a database that already
    // ran a later-numbered file still gets an earlier one merged after it.
    // Safe because every statement is idempotent.
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error !== undefined || failed !== undefined) {
    throw new MigrationError(`migration ${failed?.migrationName ?? "(setup)"} failed`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/**
 * Applies pending migrations to `database` on a connection without the
 * pool's `statement_timeout` (RPC_TIMEOUT_MS) or client query timeout (see
 * `Database.withoutTimeouts`): what the server does at start and
 * `releasegate migrate` does. Returns the names applied.
 */
export function migrateDatabase(database: Database, dir = defaultMigrationsDir()): Promise<string[]> {
  return database.withoutTimeouts((db) => migrateToLatest(db, dir));
}
