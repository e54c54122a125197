import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect } from "kysely";
import { PGliteDialect } from "kysely-pglite-dialect";
import pg from "pg";
import { autoPreparePool } from "./auto-prepare.js";
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
  /** How often a LISTEN connection checks that it still receives, in ms; 0 turns it off. Default DEFAULT_LISTEN_CHECK_MS. */
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

/** How often a LISTEN connection notifies itself to check it still receives: 30 s. */
export const DEFAULT_LISTEN_CHECK_MS = 30_000;
/** How long such a check waits for its own notification: 5 s (less when checks come more often). */
const LISTEN_CHECK_TIMEOUT_MS = 5_000;
/** Payload prefix of those checks; never handed to subscribers. */
const LISTEN_PING_PREFIX = "releasegate-listen-ping:";
/** LISTEN reconnect backoff: 250 ms doubling up to 10 s. */
const LISTEN_RETRY_BASE_MS = 250;
const LISTEN_RETRY_MAX_MS = 10_000;

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
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: options.autoPrepare === false ? pool : autoPreparePool(pool) }) });
  return {
    db,
    kind: "postgres",
    description: redactUrl(url),
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
    }),
    async listen(channel, onNotify, onReconnect) {
      // A dedicated client outside the pool: LISTEN is per-session.
      let current: pg.Client | undefined;
      let stopped = false;
      let retry: NodeJS.Timeout | undefined;
      const pings = new Map<string, () => void>();
      const connect = async () => {
        const client = new pg.Client({ connectionString: url });
        client.on("error", (err) => options.onPoolError?.(err));
        client.on("notification", (msg) => {
          if (msg.channel !== channel) return;
          const payload = msg.payload ?? "";
          if (payload.startsWith(LISTEN_PING_PREFIX)) pings.get(payload)?.();
          else onNotify(payload);
        });
        // Only the live client's end schedules a reconnect (a failed attempt
        // is retried by its own catch).
        client.on("end", () => {
          if (client === current && !stopped) reconnect(0);
        });
        try {
          await client.connect();
          await client.query(`LISTEN ${pgIdent(channel)}`);
        } catch (err) {
          await client.end().catch(() => undefined);
          throw err;
        }
        current = client;
      };
      const reconnect = (attempt: number) => {
        current = undefined;
        retry = setTimeout(
          () => {
            if (stopped) return;
            connect().then(
              () => onReconnect?.(),
              () => reconnect(attempt + 1),
            );
          },
          Math.min(LISTEN_RETRY_MAX_MS, LISTEN_RETRY_BASE_MS * 2 ** attempt),
        );
        retry.unref();
      };
      // Sends itself a ping through the pool; listens anew when the ping was
      // sent but did not come back (a failed send is the database's trouble,
      // not this connection's: the next check tries again).
      const checkMs = options.listenCheckMs ?? DEFAULT_LISTEN_CHECK_MS;
      let checking = false;
      const check = async () => {
        const listening = current;
        if (checking || stopped || listening === undefined) return;
        checking = true;
        const ping = `${LISTEN_PING_PREFIX}${randomUUID()}`;
        let timer: NodeJS.Timeout | undefined;
        try {
          const arrived = new Promise<boolean>((resolve) => {
            pings.set(ping, () => resolve(true));
            timer = setTimeout(() => resolve(false), Math.min(LISTEN_CHECK_TIMEOUT_MS, checkMs));
          });
          await pool.query("select pg_notify($1, $2)", [channel, ping]);
          if ((await arrived) || stopped || listening !== current) return;
          options.onPoolError?.(new Error(`LISTEN ${channel}: the connection stopped delivering notifications; listening again`));
          reconnect(0);
          // Not awaited: a connection that went silent may never answer its goodbye.
          listening.end().catch(() => undefined);
        } catch (err) {
          options.onPoolError?.(err as Error);
        } finally {
          clearTimeout(timer);
          pings.delete(ping);
          checking = false;
        }
      };
      await connect();
      const checkTimer = checkMs > 0 ? setInterval(() => void check(), checkMs) : undefined;
      checkTimer?.unref();
      return async () => {
        stopped = true;
        clearTimeout(retry);
        clearInterval(checkTimer);
        await current?.end().catch(() => undefined);
      };
    },
    async withoutTimeouts(work) {
      const single = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 5_000 });
      single.on("error", (err) => options.onPoolError?.(err));
      const unbounded = new Kysely<DB>({ dialect: new PostgresDialect({ pool: single }) });
      try {
        return await work(unbounded);
      } finally {
        await unbounded.destroy();
      }
    },
    destroy: () => db.destroy(),
  };
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

function pgIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad channel name ${name}`);
  return name;
}
