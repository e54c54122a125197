import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { defaultMigrationsDir, migrateToLatest } from "../../src/db/migrate.js";
import { splitSqlStatements } from "../../src/db/sql-script.js";
import { createEmptyDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";
import { schemaSnapshot, tableNames } from "../support/schema.js";

// Runs on Postgres under `npm test` (DATABASE_URL set) and on PGlite under
// `npm run test:pglite`: one set of migrations serves both.

const dir = defaultMigrationsDir();
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".sql"))
  .sort();
const names = files.map((f) => f.replace(/\.sql$/, ""));

let opened: TestDatabase | undefined;
afterEach(async () => {
  await opened?.dispose();
  opened = undefined;
});
async function empty(): Promise<Kysely<unknown>> {
  opened = await createEmptyDatabase(testDatabaseKind());
  return opened.database.db as Kysely<unknown>;
}

// Fresh PGlite instances start slowly on a loaded 2-core machine.
describe(`migrations on ${testDatabaseKind()}`, { timeout: 60_000 }, () => {
  it("applies every migration on a fresh database, then nothing on a second run", async () => {
    const db = await empty();
    expect(await migrateToLatest(db as never)).toEqual(names);
    const before = await schemaSnapshot(db);
    expect(await migrateToLatest(db as never)).toEqual([]);
    expect(await schemaSnapshot(db)).toEqual(before);
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
    expect(rows.map((r) => r.name)).toEqual(names);
  });

  it("applies every file cleanly twice, statement by statement, in order", async () => {
    const db = await empty();
    for (const file of files) {
      const statements = splitSqlStatements(readFileSync(join(dir, file), "utf8"));
      for (const s of statements) await sql.raw(s).execute(db);
      const once = await schemaSnapshot(db);
      for (const s of statements) await sql.raw(s).execute(db);
      expect(await schemaSnapshot(db), file).toEqual(once);
    }
    expect(await tableNames(db)).toEqual(expect.arrayContaining(["policies", "release_intents", "deployments"]));
  });

  it("applies a migration added with an earlier number after later ones ran", async () => {
    const partial = mkdtempSync(join(tmpdir(), "rg-migrations-"));
    try {
      const db = await empty();
      // The base tables (0001, 0002) and the newest file, which builds on them; the ones between come later.
      const base = files.slice(0, 2);
      const last = files.at(-1)!;
      for (const f of [...base, last]) copyFileSync(join(dir, f), join(partial, f));
      expect(await migrateToLatest(db as never, partial)).toEqual([...base, last].map((f) => f.replace(/\.sql$/, "")));
      expect(await migrateToLatest(db as never)).toEqual(names.slice(2, -1));
      expect(await migrateToLatest(db as never)).toEqual([]);
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
  });

  it("reports a failing migration by name and rolls the whole run back", async () => {
    const broken = mkdtempSync(join(tmpdir(), "rg-migrations-"));
    try {
      const db = await empty();
      copyFileSync(join(dir, files[0]!), join(broken, files[0]!));
      writeFileSync(join(broken, "9999_broken.sql"), "CREATE TABLE IF NOT EXISTS ok_table (id int);\nSELEC 1;");
      await expect(migrateToLatest(db as never, broken)).rejects.toThrow("migration 9999_broken failed");
      // Kysely runs one transaction per migrateToLatest on Postgres: all or nothing.
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
      expect(rows).toEqual([]);
      expect(await tableNames(db)).not.toContain("ok_table");
      expect(await tableNames(db)).not.toContain("policies");
      // Fixed, it applies.
      writeFileSync(join(broken, "9999_broken.sql"), "CREATE TABLE IF NOT EXISTS ok_table (id int);");
      expect(await migrateToLatest(db as never, broken)).toEqual([names[0], "9999_broken"]);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });
});
