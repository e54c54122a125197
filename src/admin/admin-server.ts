import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { type ServerHealth, ServingStatus } from "../health/health.js";
import type { Logger } from "../logger.js";

export interface AdminServerOptions {
  readonly host: string;
  /** METRICS_PORT; 0 picks a free port (tests). */
  readonly port: number;
  readonly health: ServerHealth;
  readonly registry: Registry;
  readonly logger: Logger;
}

/**
 * Plain HTTP/1.1 for Kubernetes probes and Prometheus, on its own port:
 * `GET /healthz` 200 while the process runs; `GET /readyz` 200 when the
 * server is ready and the database answers, 503 before that and while
 * draining; `GET /metrics` the Prometheus text format.
 */
export class AdminServer {
  readonly #options: AdminServerOptions;
  #server?: http.Server;

  constructor(options: AdminServerOptions) {
    this.#options = options;
  }

  get port(): number {
    const addr = this.#server?.address() as AddressInfo | null | undefined;
    return addr?.port ?? this.#options.port;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#options.logger.error({ err, path: req.url }, "admin request failed");
        if (!res.headersSent) text(res, 500, "internal error\n");
        else res.destroy();
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "method not allowed\n");
    switch (path) {
      case "/healthz":
        return text(res, 200, "ok\n");
      case "/readyz": {
        const { health } = this.#options;
        if (health.draining) return text(res, 503, "draining\n");
        // Each /readyz pings the database (shared with concurrent probes).
        const status = await health.probe();
        return status === ServingStatus.SERVING
          ? text(res, 200, "ready\n")
          : text(res, 503, "not ready: starting or database not answering\n");
      }
      case "/metrics": {
        const { registry } = this.#options;
        const body = await registry.metrics();
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(body);
        return;
      }
      default:
        return text(res, 404, "not found: try /healthz, /readyz or /metrics\n");
    }
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(body);
}
