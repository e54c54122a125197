import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { type Database, openDatabase, wrapPglite } from "../../src/db/database.js";
import { defaultMigrationsDir, migrateToLatest } from "../../src/db/migrate.js";
import { ADMIN_DATABASE_URL, requireService } from "./services.js";

/** The Postgres the machine runs (DATABASE_URL); tests create their own databases on it. */
export { ADMIN_DATABASE_URL };

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
  await requireService("postgres");
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

const templates = new Map<string, Promise<Blob>>();

/**
 * A PGlite data directory as a tarball that test databases clone (~0.4 s
 * instead of 2-3 s for a fresh PGlite). vitest re-imports modules per test
 * file, so each dump is also cached on disk under `key` (written then renamed,
 * so parallel workers never read half a file).
 */
function cachedTemplate(key: string, build: (pglite: PGlite) => Promise<void>): Promise<Blob> {
  let template = templates.get(key);
  if (template === undefined) {
    template = (async () => {
      const path = join(tmpdir(), `releasegate-pglite-${key}.tar`);
      if (existsSync(path)) return new Blob([readFileSync(path)]);
      const pglite = await PGlite.create();
      try {
        await build(pglite);
        const dump = await pglite.dumpDataDir("none");
        const partial = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
        writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
        renameSync(partial, path);
        // Drop dumps of older migrations (40 MB each): same kind, other key.
        const kind = key.split("-")[0];
        for (const f of readdirSync(tmpdir()))
          if (f.startsWith(`releasegate-pglite-${kind}-`) && f.endsWith(".tar") && join(tmpdir(), f) !== path)
            rmSync(join(tmpdir(), f), { force: true });
        return dump;
      } finally {
        await pglite.close();
      }
    })();
    templates.set(key, template);
  }
  return template;
}

// A new PGlite may not read an old version's dump: the version is part of the key.
const PGLITE_VERSION = JSON.parse(
  readFileSync(join(dirname(defaultMigrationsDir()), "node_modules/@electric-sql/pglite/package.json"), "utf8"),
).version as string;

/** A freshly migrated PGlite, keyed by the migrations' content: a changed migration makes a new one. */
export function pgliteTemplate(): Promise<Blob> {
  const dir = defaultMigrationsDir();
  const hash = createHash("sha256").update(PGLITE_VERSION);
  for (const file of readdirSync(dir).sort()) hash.update(file).update(readFileSync(join(dir, file)));
  return cachedTemplate(`migrated-${hash.digest("hex").slice(0, 16)}`, async (pglite) => {
    const database = wrapPglite(pglite, "template");
    await migrateToLatest(database.db, dir);
  });
}

async function clonePglite(template: Promise<Blob>): Promise<PGlite> {
  const pglite = new PGlite({ loadDataDir: await template });
  await pglite.waitReady;
  return pglite;
}

/** A fresh, migrated database of the chosen kind, isolated to the caller. */
export function createTestDatabase(
  kind: "postgres" | "pglite" = testDatabaseKind(),
  poolSize = 10,
): Promise<TestDatabase> {
  return openFresh(kind, poolSize, true);
}

/** A fresh database of the chosen kind with no migrations applied (migration tests). */
export function createEmptyDatabase(kind: "postgres" | "pglite" = testDatabaseKind()): Promise<TestDatabase> {
  return openFresh(kind, 4, false);
}

async function openFresh(kind: "postgres" | "pglite", poolSize: number, migrated: boolean): Promise<TestDatabase> {
  if (kind === "pglite") {
    const template = migrated ? pgliteTemplate() : cachedTemplate(`empty-${PGLITE_VERSION}`, async () => {});
    const database = wrapPglite(await clonePglite(template));
    return { database, dispose: () => database.destroy() };
  }
  const { url, drop } = await createPostgresDatabase();
  const database = await openDatabase({ databaseUrl: url, dataDir: "/nonexistent", poolSize });
  if (migrated) await migrateToLatest(database.db);
  return {
    database,
    url,
    async dispose() {
      await database.destroy();
      await drop();
    },
  };
}
