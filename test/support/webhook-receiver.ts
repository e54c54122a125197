import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { verifySignature } from "../../src/notify/signature.js";

/** How the receiver answers: 2xx, 500, never (hangs), or a redirect. */
export type ReceiverMode = "ok" | "fail" | "hang" | "redirect";

/** One request the receiver got, with its signature checked. */
export interface Received {
  readonly eventId: string;
  readonly idempotencyKey: string;
  readonly kind: string;
  readonly contentType: string;
  readonly timestamp: string;
  readonly signatureValid: boolean;
  readonly body: string;
  /** What the receiver answered (hang: "hang"). */
  readonly answered: ReceiverMode;
  readonly path: string;
}

/**
 * A real webhook receiver on 127.0.0.1 (port 0, kept across restarts):
 * verifies each request's signature with `secret`, records it, answers per
 * `mode`; `down()` closes the port, `up()` listens on it again.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  mode: ReceiverMode = "ok";
  readonly #secret: string;
  #server?: Server;
  #port = 0;
  readonly #sockets = new Set<Socket>();
  readonly #hanging = new Set<ServerResponse>();

  constructor(secret: string) {
    this.#secret = secret;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/hook`;
  }

  get port(): number {
    return this.#port;
  }

  /** Requests being held open right now (mode "hang"). */
  get hangingCount(): number {
    return this.#hanging.size;
  }

  /** Requests answered 2xx. */
  delivered(): Received[] {
    return this.received.filter((r) => r.answered === "ok");
  }

  async up(): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Closes the port and every connection (hanging ones too): senders get refused or reset. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#hanging.clear();
    for (const s of this.#sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const header = (name: string) => String(req.headers[name.toLowerCase()] ?? "");
    const mode = this.mode;
    this.received.push({
      eventId: header("Releasegate-Event-Id"),
      idempotencyKey: header("Idempotency-Key"),
      kind: header("Releasegate-Event-Kind"),
      contentType: header("Content-Type"),
      timestamp: header("Releasegate-Timestamp"),
      signatureValid: verifySignature(this.#secret, header("Releasegate-Timestamp"), body, header("Releasegate-Signature")),
      body,
      answered: mode,
      path: req.url ?? "",
    });
    if (mode === "ok") res.writeHead(204).end();
    else if (mode === "fail") res.writeHead(500, { "content-type": "text/plain" }).end("receiver broken");
    else if (mode === "redirect") res.writeHead(302, { location: `http://127.0.0.1:${this.#port}/elsewhere` }).end();
    else this.#hanging.add(res);
  }
}
