import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import * as net from "node:net";
import { withSpecGrpcMessage } from "./grpc-message.js";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** Default time a new cleartext connection gets to send its first bytes: 10 s. */
export const DEFAULT_SNIFF_TIMEOUT_MS = 10_000;

export interface ListenerOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  /**
   * Milliseconds a cleartext connection may stay silent before we know its
   * protocol; then it is closed (neither HTTP server's timeouts apply yet).
   * Default DEFAULT_SNIFF_TIMEOUT_MS.
   */
  sniffTimeoutMs?: number;
}

/**
 * One port for gRPC, gRPC-Web and Connect over HTTP/2 and HTTP/1.1.
 *
 * Cleartext: node's http2 server speaks only HTTP/2 (h2c prior knowledge), so a
 * plain `curl` (HTTP/1.1) would get garbage. We read the first bytes of each
 * connection: the HTTP/2 preface starts with "PRI", no HTTP/1 method does.
 * Either server gets the socket itself with those bytes pushed back
 * (`unshift`): the HTTP/1 parser reads buffered data first, and Node's HTTP/2
 * session feeds what the socket already buffered to its native handle before
 * it starts reading the handle directly (nodejs/node#35475), so HTTP/2 keeps
 * its native I/O path (no JS stream in between).
 * TLS: ALPN chooses, via `allowHTTP1`.
 */
export class Listener {
  readonly #options: ListenerOptions;
  readonly #handler: Handler;
  readonly #sockets = new Set<Socket>();
  readonly #sessions = new Set<http2.Http2Session>();
  #server?: net.Server;
  #h1?: http.Server;
  #h2?: http2.Http2Server | http2.Http2SecureServer;

  constructor(options: ListenerOptions, handler: Handler) {
    this.#options = options;
    this.#handler = handler;
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    const addr = this.#server?.address();
    return typeof addr === "object" && addr !== null ? addr.port : this.#options.port;
  }

  async start(): Promise<void> {
    // connect-node's adapter accepts both request flavours.
    // biome-ignore lint/suspicious/noExplicitAny: one handler serves both servers
    const handler = withSpecGrpcMessage(this.#handler) as (req: any, res: any) => void;
    const trackSession = (s: http2.Http2Session) => {
      this.#sessions.add(s);
      s.once("close", () => this.#sessions.delete(s));
    };
    if (this.#options.tls) {
      const h2 = http2.createSecureServer(
        {
          cert: readFileSync(this.#options.tls.certFile),
          key: readFileSync(this.#options.tls.keyFile),
          allowHTTP1: true,
        },
        handler,
      );
      h2.on("session", trackSession);
      this.#h2 = h2;
      this.#server = h2;
    } else {
      const h2 = http2.createServer({}, handler);
      h2.on("session", trackSession);
      const h1 = http.createServer(handler);
      this.#h1 = h1;
      this.#h2 = h2;
      this.#server = net.createServer((socket: Socket) => this.#route(socket, h1, h2));
    }
    const server = this.#server;
    server.on("connection", (s: Socket) => {
      this.#sockets.add(s);
      s.once("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  #route(socket: Socket, h1: http.Server, h2: http2.Http2Server): void {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < 3) return;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.setTimeout(0);
      socket.off("timeout", onSilent);
      socket.pause();
      socket.unshift(head);
      if (head.subarray(0, 3).toString("latin1") === "PRI") {
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    const onError = () => socket.destroy();
    const onSilent = () => socket.destroy();
    socket.setTimeout(this.#options.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS);
    socket.on("timeout", onSilent);
    // Small writes (HTTP/1 responses, HTTP/2 frames) must not wait for
    // Nagle + delayed ACK (~40 ms).
    socket.setNoDelay(true);
    socket.on("data", onData);
    socket.on("error", onError);
  }

  /**
   * Stops accepting connections; lets in-flight requests finish for up to
   * `graceMs`, then destroys what is left.
   */
  async stop(graceMs = 5_000): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Ask HTTP/2 clients to go away after their current streams.
    for (const s of this.#sessions) s.close();
    this.#h1?.closeIdleConnections();
    this.#h1?.close();
    this.#h2?.close();
    const timer = setTimeout(() => {
      for (const s of this.#sessions) s.destroy();
      for (const s of this.#sockets) s.destroy();
    }, graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }
}
