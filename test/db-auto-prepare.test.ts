import { Code } from "@connectrpc/connect";
import { CompiledQuery, Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AUTO_PREPARE_THRESHOLD, type AutoPrepareOptions, autoPreparePool } from "../src/db/auto-prepare.js";
import { openDatabase } from "../src/db/database.js";
import { isRetryableDbError, toConnectError } from "../src/errors.js";
import { createPostgresDatabase } from "./support/database.js";

// Every Kysely here has a one-connection pool, so all its statements (and the
// pg_prepared_statements query, which is parameterless and so never prepared)
// run on the same session until that connection is discarded.

interface Prepared {
  name: string;
  statement: string;
  executions: number;
}

async function preparedStatements(db: Kysely<unknown>): Promise<Prepared[]> {
  const { rows } = await sql<Prepared>`
    select name, statement, (generic_plans + custom_plans)::int as executions
    from pg_prepared_statements order by statement`.execute(db);
  return rows;
}

async function backendPid(db: Kysely<unknown>): Promise<number> {
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db);
  return rows[0]!.pid;
}

/** Runs `text` with `values` as raw SQL through Kysely (so through the wrapped pool). */
async function run<R>(db: Kysely<unknown>, text: string, values: unknown[]): Promise<R[]> {
  const { rows } = await db.executeQuery<R>(CompiledQuery.raw(text, values));
  return rows;
}

describe("auto-prepare on Postgres", () => {
  let pgdb: { url: string; drop: () => Promise<void> };
  let admin: pg.Client;
  const opened: Kysely<unknown>[] = [];

  const open = (options?: AutoPrepareOptions) => {
    // No idle timeout: the connection changes only when auto-prepare discards it.
    const pool = new pg.Pool({ connectionString: pgdb.url, max: 1, idleTimeoutMillis: 0 });
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: autoPreparePool(pool, options) }) });
    opened.push(db);
    return db;
  };

  beforeAll(async () => {
    pgdb = await createPostgresDatabase();
    admin = new pg.Client({ connectionString: pgdb.url });
    await admin.connect();
    await admin.query(`
      create table sample (id int primary key, label text, at timestamptz, doc jsonb, amount numeric, tags text[]);
      insert into sample values
        (1, 'one', '2026-01-02T03:04:05.678Z', '{"k": [1, 2]}', 12.50, '{a,b}'),
        (2, null, null, null, null, null),
        (3, 'three', '2025-12-31T23:59:59Z', '"s"', -3, '{}')`);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
    await admin.query("drop table if exists widening");
  });
  afterAll(async () => {
    await admin?.end();
    await pgdb?.drop();
  });

  it("prepares nothing when openDatabase is told not to (DB_AUTO_PREPARE=false)", async () => {
    const database = await openDatabase({ databaseUrl: pgdb.url, dataDir: "/nonexistent", poolSize: 1, autoPrepare: false });
    try {
      await (database.db as unknown as Kysely<unknown>).connection().execute(async (db) => {
        for (let i = 0; i < AUTO_PREPARE_THRESHOLD + 2; i++) await run(db, "select label from sample where id = $1", [1]);
        expect(await preparedStatements(db)).toEqual([]);
      });
    } finally {
      await database.destroy();
    }
  });

  it("sends a statement as a named prepared statement from its AUTO_PREPARE_THRESHOLD-th run on (openDatabase)", async () => {
    const database = await openDatabase({ databaseUrl: pgdb.url, dataDir: "/nonexistent", poolSize: 1 });
    try {
      // Reserved, so the pool's idle timeout cannot swap the connection mid-test.
      await (database.db as unknown as Kysely<unknown>).connection().execute(async (db) => {
        const text = "select label from sample where id = $1";
        for (let i = 1; i < AUTO_PREPARE_THRESHOLD; i++) await run(db, text, [1]);
        expect(await preparedStatements(db)).toEqual([]);

        await run(db, text, [1]);
        await run(db, text, [3]);
        expect(await preparedStatements(db)).toEqual([
          { name: expect.stringMatching(/^rg_[0-9a-f]{24}$/), statement: text, executions: 2 },
        ]);
      });
    } finally {
      await database.destroy();
    }
  });

  it("returns the same rows from a prepared statement as from an unnamed one", async () => {
    const db = open({ threshold: 1 });
    const text = "select * from sample where id = any($1::int[]) or label = $2 order by id";
    const params = [[1, 2], "three"];
    const unnamed = await admin.query(text, params);
    const first = await run(db, text, params);
    const again = await run(db, text, params);

    expect((await preparedStatements(db)).map((p) => p.statement)).toEqual([text]);
    expect(first).toEqual(unnamed.rows);
    expect(again).toEqual(unnamed.rows);
    expect(unnamed.rows).toHaveLength(3);
  });

  it("leaves parameterless statements and transaction control unnamed", async () => {
    const db = open({ threshold: 1 });
    for (let i = 0; i < 3; i++) {
      await db.transaction().execute(async (trx) => {
        await sql`select count(*) from sample`.execute(trx);
      });
    }
    expect(await preparedStatements(db)).toEqual([]);
  });

  it("prepares at most maxStatements texts per connection; later texts still run unnamed", async () => {
    const db = open({ threshold: 2, maxStatements: 3 });
    const texts = [1, 2, 3, 4, 5].map((n) => `select id, ${n} as n from sample where id = $1`);
    for (const [i, text] of texts.entries()) {
      for (let r = 0; r < 3; r++) expect(await run(db, text, [2])).toEqual([{ id: 2, n: i + 1 }]);
    }
    expect((await preparedStatements(db)).map((p) => p.statement)).toEqual(texts.slice(0, 3));
  });

  it("retries unnamed and discards the connection when a prepared select * changes result type", async () => {
    const db = open({ threshold: 1 });
    await admin.query("create table widening (id int); insert into widening values (1)");
    const text = "select * from widening where id = $1";
    expect(await run(db, text, [1])).toEqual([{ id: 1 }]);
    const pid = await backendPid(db);

    // Another replica's migration.
    await admin.query("alter table widening add column extra int not null default 7");

    expect(await run(db, text, [1])).toEqual([{ id: 1, extra: 7 }]);
    expect(await backendPid(db)).not.toBe(pid);
    expect(await run(db, text, [1])).toEqual([{ id: 1, extra: 7 }]);
    expect((await preparedStatements(db)).map((p) => p.statement)).toEqual([text]);
  });

  it("inside a transaction, surfaces the stale-plan error (0A000) and discards the connection", async () => {
    const db = open({ threshold: 1 });
    await admin.query("create table widening (id int); insert into widening values (1)");
    const text = "select * from widening where id = $1";
    await run(db, text, [1]);
    const pid = await backendPid(db);
    await admin.query("alter table widening add column extra int not null default 7");

    const failed = db.transaction().execute((trx) => run(trx, text, [1]));
    await expect(failed).rejects.toMatchObject({
      code: "0A000",
      message: "cached plan must not change result type",
    });
    // Callers see it as transient: the vote transaction retries it, the wire says UNAVAILABLE.
    const err = await failed.catch((e: unknown) => e);
    expect(isRetryableDbError(err)).toBe(true);
    expect(toConnectError(err).code).toBe(Code.Unavailable);

    expect(await backendPid(db)).not.toBe(pid);
    expect(await db.transaction().execute((trx) => run(trx, text, [1]))).toEqual([{ id: 1, extra: 7 }]);
  });
});
