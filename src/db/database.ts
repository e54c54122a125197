import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect } from "kysely";
import { PGliteDialect } from "kysely-pglite-dialect";
import pg from "pg";
import type { DB } from "./schema.js";

/** A Kysely handle plus what the rest of the app needs to know about it. */
export interface Database {
  readonly db: Kysely<DB>;
  readonly kind: "postgres" | "pglite";
  /** Human-readable location for the start-up log (no password). */
  readonly description: string;
  /** Pool statistics for metrics; PGlite has one connection. */
  poolStats(): { total: number; idle: number; waiting: number };
  /**
   * Subscribes to a NOTIFY channel; returns an unsubscribe function. Lets
   * replicas wake each other (outbox relay, policy cache invalidation).
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  destroy(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  dataDir: string;
  poolSize: number;
  /** Called when an idle pool client errors (e.g. the server restarted). */
  onPoolError?: (err: Error) => void;
  /**
   * Postgres cancels any statement running longer than this (`statement_timeout`),
   * so a query outliving its RPC's deadline does not keep holding a connection.
   * Milliseconds; undefined = no limit. PGlite cannot cancel a running query.
   */
  statementTimeoutMs?: number;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres (unparsable URL)";
  }
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl !== undefined) return openPostgres(options.databaseUrl, options);
  return openPglite(options.dataDir);
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize,
    connectionTimeoutMillis: 5_000,
    // Keep a dead server from hanging requests forever.
    query_timeout: 30_000,
    statement_timeout: options.statementTimeoutMs,
  });
  // Without a listener an idle client's error (server restart) crashes the process.
  pool.on("error", (err) => options.onPoolError?.(err));
  // The pool listens only to idle clients. A checked-out client (inside a
  // transaction) whose connection drops emits "error" with no listener, which
  // kills the process; its queries fail anyway (→ UNAVAILABLE), so report it
  // and let the pool discard the client.
  pool.on("connect", (client) => client.on("error", (err) => options.onPoolError?.(err)));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    kind: "postgres",
    description: redactUrl(url),
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
    }),
    async listen(channel, onNotify) {
      // A dedicated client outside the pool: LISTEN is per-session.
      const client = new pg.Client({ connectionString: url });
      client.on("error", (err) => options.onPoolError?.(err));
      await client.connect();
      client.on("notification", (msg) => {
        if (msg.channel === channel) onNotify(msg.payload ?? "");
      });
      await client.query(`LISTEN ${pgIdent(channel)}`);
      return async () => {
        await client.end().catch(() => undefined);
      };
    },
    destroy: () => db.destroy(),
  };
}

async function openPglite(dataDir: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, "pgdata");
  return wrapPglite(await PGlite.create(path), `embedded PGlite at ${path}`);
}

/** Opens an already-created PGlite instance (tests: in-memory clones). */
export function wrapPglite(pglite: PGlite, description = "embedded PGlite (memory)"): Database {
  const db = new Kysely<DB>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    kind: "pglite",
    description,
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    listen: (channel, onNotify) => pglite.listen(channel, onNotify),
    // The dialect's destroy closes the PGlite instance.
    destroy: () => db.destroy(),
  };
}

function pgIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad channel name ${name}`);
  return name;
}
