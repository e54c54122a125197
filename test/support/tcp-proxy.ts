import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/**
 * A plain TCP proxy on 127.0.0.1 in front of a server, for cutting a
 * browser's connections the way a flaky network or a restarted load
 * balancer does: `cutWhere(match)` destroys every connection whose client
 * sent bytes matching `match`; while `refusing`, new connections are closed
 * at once.
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #conns = new Set<{ client: Socket; upstream: Socket; sent: string }>();
  refusing = false;

  private constructor(targetPort: number) {
    this.#server = createServer((client) => this.#accept(client, targetPort));
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get baseUrl(): string {
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("proxy not listening");
    return `http://127.0.0.1:${address.port}`;
  }

  #accept(client: Socket, targetPort: number): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    const conn = { client, upstream, sent: "" };
    this.#conns.add(conn);
    client.on("data", (chunk: Buffer) => {
      conn.sent = (conn.sent + chunk.toString("latin1")).slice(-16 * 1024);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const close = () => {
      this.#conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("close", close);
      s.on("error", close);
    }
  }

  /** Destroys every open connection whose client sent something matching `match`; returns how many. */
  cutWhere(match: RegExp): number {
    let cut = 0;
    for (const conn of this.#conns)
      if (match.test(conn.sent)) {
        conn.client.destroy();
        conn.upstream.destroy();
        cut++;
      }
    return cut;
  }

  async stop(): Promise<void> {
    for (const conn of this.#conns) {
      conn.client.destroy();
      conn.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
