import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../src/db/database.js";
import { createPostgresDatabase } from "./support/database.js";
import { openThroughProxy } from "./support/pg-proxy.js";

/** Polls `check` until it holds or `timeoutMs` passes. */
async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("Database.listen on Postgres", () => {
  let pgdb: { url: string; drop: () => Promise<void> };
  let database: Database;
  let admin: pg.Client;

  beforeAll(async () => {
    pgdb = await createPostgresDatabase();
    database = await openDatabase({ databaseUrl: pgdb.url, dataDir: "/nonexistent", poolSize: 2 });
    admin = new pg.Client({ connectionString: pgdb.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await database?.destroy();
    await pgdb?.drop();
  });

  it("listens again after its connection is terminated, and tells the subscriber to resynchronise", async () => {
    const received: string[] = [];
    let reconnects = 0;
    const unlisten = await database.listen(
      "rg_listen_test",
      (payload) => received.push(payload),
      () => reconnects++,
    );
    try {
      await admin.query("select pg_notify('rg_listen_test', 'before')");
      await waitFor(() => received.includes("before"));

      const killed = await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'LISTEN rg_listen_test%'",
      );
      expect(killed.rowCount).toBe(1);
      await waitFor(() => reconnects === 1);

      await admin.query("select pg_notify('rg_listen_test', 'after')");
      await waitFor(() => received.includes("after"));
      expect(received).toEqual(["before", "after"]);
    } finally {
      await unlisten();
    }
  });

  it("replaces a LISTEN connection that goes silent without closing, and tells the subscriber to resynchronise", async () => {
    const errors: string[] = [];
    const { proxy, database: proxied, close } = await openThroughProxy(pgdb.url, {
      listenCheckMs: 200,
      onPoolError: (err) => errors.push(err.message),
    });
    const received: string[] = [];
    let reconnects = 0;
    const unlisten = await proxied.listen(
      "rg_silent_test",
      (payload) => received.push(payload),
      () => reconnects++,
    );
    try {
      await admin.query("select pg_notify('rg_silent_test', 'before')");
      await waitFor(() => received.includes("before"));
      // Pings come and go unseen by the subscriber while the connection is healthy.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(received).toEqual(["before"]);

      expect(proxy.freezeWhere(/LISTEN rg_silent_test/)).toBe(1);
      await waitFor(() => reconnects === 1);
      expect(errors).toContain("LISTEN rg_silent_test: the connection stopped delivering notifications; listening again");
      await admin.query("select pg_notify('rg_silent_test', 'after')");
      await waitFor(() => received.includes("after"));
      expect(received).toEqual(["before", "after"]);
    } finally {
      await unlisten();
      await close();
    }
  });
});
