import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect } from "kysely";
import { PGliteDialect } from "kysely-pglite-dialect";
import pg from "pg";
import { autoPreparePool } from "./auto-prepare.js";
import { openListenSession } from "./listen-session.js";
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
   * On Postgres the LISTEN connection is re-established (with backoff) when
   * it closes, or when it stops delivering: every `listenCheckMs` it
   * notifies itself through the pool and listens anew if that ping does not
   * come back (a half-open connection never closes by itself). `onReconnect`
   * then runs, because notifications sent while it was down are lost and the
   * subscriber must resynchronise.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onReconnect?: () => void,
  ): Promise<() => Promise<void>>;
  /**
   * Runs `work` on a connection of its own without `statement_timeout` or
   * the client's query timeout, closed afterwards: schema migrations at
   * start, where an index build or the wait for another replica's migration
   * lock may outlast any RPC. PGlite: its one connection (no timeouts).
   */
  withoutTimeouts<T>(work: (db: Kysely<DB>) => Promise<T>): Promise<T>;
  destroy(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  dataDir: string;
  poolSize: number;
  /** Named prepared statements for hot statements (default true; see auto-prepare.ts). */
  autoPrepare?: boolean;
  /** Called when an idle pool client errors (e.g. the server restarted), and when a LISTEN connection is replaced. */
  onPoolError?: (err: Error) => void;
  /** How often a LISTEN connection checks that it still receives, in ms; 0 turns it off. Default DEFAULT_LISTEN_CHECK_MS (listen-session.ts). */
  listenCheckMs?: number;
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

/**
 * Postgres, in named steps: the pool (with its session settings and error
 * handlers), Kysely over it, LISTEN sessions of their own, and unbounded
 * sessions for migrations.
 */
function openPostgres(url: string, options: DatabaseOptions): Database {
  const pool = createPool(url, options);
  const db = kyselyOver(pool, options.autoPrepare !== false);
  return {
    db,
    kind: "postgres",
    description: redactUrl(url),
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
    }),
    listen: (channel, onNotify, onReconnect) =>
      openListenSession({
        url,
        channel,
        onNotify,
        onReconnect,
        // The check's ping goes through the pool: another path than the session it checks.
        notify: async (payload) => {
          await pool.query("select pg_notify($1, $2)", [channel, payload]);
        },
        onError: (err) => options.onPoolError?.(err),
        checkMs: options.listenCheckMs,
      }),
    withoutTimeouts: (work) => withUnboundedSession(url, options, work),
    destroy: () => db.destroy(),
  };
}

/** How long a new pool connection may take to open, in ms. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Client-side bound on any pooled query (a dead server must not hang requests forever), in ms. */
const POOL_QUERY_TIMEOUT_MS = 30_000;

/**
 * The request pool. Its connections carry the session settings
 * (`statement_timeout`) from the start-up packet, and every client reports
 * its errors instead of crashing the process.
 */
function createPool(url: string, options: DatabaseOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: POOL_QUERY_TIMEOUT_MS,
    statement_timeout: options.statementTimeoutMs,
  });
  reportClientErrors(pool, options.onPoolError);
  return pool;
}

function reportClientErrors(pool: pg.Pool, onError: DatabaseOptions["onPoolError"]): void {
  // Without a listener an idle client's error (server restart) crashes the process.
  pool.on("error", (err) => onError?.(err));
  // The pool listens only to idle clients. A checked-out client (inside a
  // transaction) whose connection drops emits "error" with no listener, which
  // kills the process; its queries fail anyway (→ UNAVAILABLE), so report it
  // and let the pool discard the client.
  pool.on("connect", (client) => client.on("error", (err) => onError?.(err)));
}

/** Kysely over the pool, with named prepared statements for hot statements unless turned off. */
function kyselyOver(pool: pg.Pool, autoPrepare: boolean): Kysely<DB> {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: autoPrepare ? autoPreparePool(pool) : pool }) });
}

/** Runs `work` on a one-connection pool of its own with no statement or query timeout, then closes it. */
async function withUnboundedSession<T>(
  url: string,
  options: DatabaseOptions,
  work: (db: Kysely<DB>) => Promise<T>,
): Promise<T> {
  const single = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  reportClientErrors(single, options.onPoolError);
  const unbounded = kyselyOver(single, false);
  try {
    return await work(unbounded);
  } finally {
    await unbounded.destroy();
  }
}

async function openPglite(dataDir: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, "pgdata");
  // Loaded only here: a server on Postgres never pays for PGlite's module.
  const { PGlite } = await import("@electric-sql/pglite");
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
    withoutTimeouts: (work) => work(db),
    // The dialect's destroy closes the PGlite instance.
    destroy: () => db.destroy(),
  };
}

export { DEFAULT_LISTEN_CHECK_MS } from "./listen-session.js";
