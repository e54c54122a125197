import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { type Database, type DatabaseOptions, openDatabase } from "../../src/db/database.js";

/**
 * A TCP proxy in front of Postgres that can make one kind of connection go
 * silent: `freezeWhere(match)` stops forwarding, in both directions, on every
 * connection whose client has sent bytes matching `match` (e.g. a LISTEN), while
 * its sockets stay open, as a half-open connection behind a dead NAT or a
 * frozen host looks. Other and new connections are forwarded as usual.
 */
export class PgProxy {
  readonly #server: Server;
  readonly #conns = new Set<{ client: Socket; upstream: Socket; sent: string; frozen: boolean }>();
  /** Statement names of every Parse message any client sent ("" = the unnamed statement). */
  readonly #parseNames: string[] = [];
  /** While true, new connections are closed at once (Postgres unreachable). */
  refusing = false;

  private constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => this.#accept(client, target));
  }

  /** Listens on 127.0.0.1 (kernel-chosen port) and forwards to `target` (host:port). */
  static async start(target: { host: string; port: number }): Promise<PgProxy> {
    const proxy = new PgProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("proxy not listening");
    return address.port;
  }

  /** `url` (a postgres:// URL of the proxied server) with its host and port replaced by this proxy's. */
  urlThrough(url: string): string {
    const via = new URL(url);
    via.host = `127.0.0.1:${this.port}`;
    return via.toString();
  }

  /** A proxy in front of the server `url` names. */
  static forUrl(url: string): Promise<PgProxy> {
    const target = new URL(url);
    return PgProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
  }

  #accept(client: Socket, target: { host: string; port: number }): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(target.port, target.host);
    const conn = { client, upstream, sent: "", frozen: false };
    this.#conns.add(conn);
    const frames = new FrontendFrames((type, body) => {
      if (type === PARSE) this.#parseNames.push(body.toString("utf8", 0, Math.max(0, body.indexOf(0))));
    });
    client.on("data", (chunk: Buffer) => {
      frames.push(chunk);
      // The protocol's text (queries, names) is ASCII enough to search in latin1.
      conn.sent = (conn.sent + chunk.toString("latin1")).slice(-64 * 1024);
      if (!conn.frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!conn.frozen) client.write(chunk);
    });
    const close = () => {
      this.#conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  }

  /** The statement name of every Parse message sent through the proxy so far, in order ("" = unnamed). */
  parseNames(): readonly string[] {
    return this.#parseNames;
  }

  /** Silences every current connection whose client sent something matching `match`; returns how many. */
  freezeWhere(match: RegExp): number {
    let frozen = 0;
    for (const conn of this.#conns)
      if (!conn.frozen && match.test(conn.sent)) {
        conn.frozen = true;
        frozen++;
      }
    return frozen;
  }

  async stop(): Promise<void> {
    for (const conn of this.#conns) {
      conn.client.destroy();
      conn.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Frontend message type of Parse (extended query protocol). */
const PARSE = 0x50;
/** The untyped first messages' codes that keep the client in start-up: SSLRequest, GSSENCRequest. */
const STARTUP_PRELUDES = new Set([80877103, 80877104]);

/**
 * Splits a client's byte stream into Postgres frontend messages: untyped
 * start-up messages (length, code) first, then typed ones (type byte, length,
 * body), whatever the TCP chunking.
 */
class FrontendFrames {
  readonly #onMessage: (type: number, body: Buffer) => void;
  #buffer = Buffer.alloc(0);
  #started = false;

  constructor(onMessage: (type: number, body: Buffer) => void) {
    this.#onMessage = onMessage;
  }

  push(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const typed = this.#started ? 1 : 0;
      if (this.#buffer.length < typed + 4) return;
      const length = this.#buffer.readInt32BE(typed);
      if (this.#buffer.length < typed + length) return;
      if (this.#started) this.#onMessage(this.#buffer[0] as number, this.#buffer.subarray(5, 1 + length));
      else if (!STARTUP_PRELUDES.has(this.#buffer.readInt32BE(4))) this.#started = true;
      this.#buffer = this.#buffer.subarray(typed + length);
    }
  }
}

/** `url`'s database opened through a new PgProxy in front of its server; close() undoes both. */
export async function openThroughProxy(
  url: string,
  options: Omit<DatabaseOptions, "databaseUrl" | "dataDir" | "poolSize"> = {},
): Promise<{ proxy: PgProxy; database: Database; close(): Promise<void> }> {
  const proxy = await PgProxy.forUrl(url);
  const database = await openDatabase({ databaseUrl: proxy.urlThrough(url), dataDir: "/nonexistent", poolSize: 2, ...options });
  return {
    proxy,
    database,
    async close() {
      await database.destroy();
      await proxy.stop();
    },
  };
}
