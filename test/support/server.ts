import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type Logger, pino } from "pino";
import { App } from "../../src/app.js";
import type { OrgRole } from "../../src/auth/caller.js";
import { mintToken } from "../../src/auth/token-verifier.js";
import type { Clock } from "../../src/clock.js";
import { type Config, loadConfig } from "../../src/config.js";
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "./database.js";
import { requireService, SHARED_NATS_URL } from "./services.js";

export const TEST_JWT_SECRET = "test-secret-that-is-at-least-32-characters-long";

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = Date.parse("2026-01-01T00:00:00Z")) {
    this.#now = start;
  }
  now(): Date {
    return new Date(this.#now);
  }
  advance(seconds: number): void {
    this.#now += seconds * 1000;
  }
  set(d: Date): void {
    this.#now = d.getTime();
  }
}

/** The wire protocols the tests speak: gRPC over HTTP/2, Connect JSON over HTTP/1.1. */
export type Protocol = "grpc" | "connect";
export const PROTOCOLS: readonly Protocol[] = ["grpc", "connect"];

export interface TestServer {
  readonly app: App;
  readonly db: TestDatabase;
  readonly config: Config;
  readonly baseUrl: string;
  /** gRPC (HTTP/2) transport with the given bearer token. */
  grpc(token?: string): Transport;
  /** Connect protocol (HTTP/1.1 JSON) transport with the given bearer token. */
  connect(token?: string): Transport;
  /** A client over gRPC (default) or the Connect protocol (JSON over HTTP/1.1). */
  client<S extends DescService>(service: S, token?: string, protocol?: Protocol): Client<S>;
  stop(): Promise<void>;
}

export interface TokenSpec {
  sub: string;
  orgs?: Record<string, OrgRole>;
  service?: boolean;
  name?: string;
  expiresIn?: string;
  /** Identity-provider groups, in the `groups` claim. */
  groups?: readonly string[];
}

/** Mints a token the test server accepts. */
export function token(spec: TokenSpec): Promise<string> {
  return mintToken(TEST_JWT_SECRET, {
    sub: spec.sub,
    username: spec.name,
    orgRoles: spec.orgs ?? {},
    actorType: spec.service ? "service" : "user",
    expiresIn: spec.expiresIn,
    ...(spec.groups === undefined ? {} : { groups: spec.groups }),
  });
}

/** Interceptors that send `authorization: Bearer <tok>` (none without a token). */
export function authHeader(tok: string | undefined) {
  return tok === undefined
    ? []
    : [
        (next: (req: { header: Headers }) => unknown) => (req: { header: Headers }) => {
          req.header.set("authorization", `Bearer ${tok}`);
          return next(req);
        },
      ];
}

export interface StartOptions {
  clock?: Clock;
  env?: Record<string, string>;
  kind?: "postgres" | "pglite";
  /** Reuse a database (e.g. a second replica); not disposed by stop(). */
  shared?: TestDatabase;
  /** Log here instead of nowhere (tests of the log lines). */
  logger?: Logger;
  /** Serve the page (/ui/) from this build (test/support/browser.ts builds one). */
  uiDir?: string;
}

/** A test server's configuration: 127.0.0.1, ports 0, the test JWT secret, silent; `env` overrides. */
export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    METRICS_PORT: "0",
    DATA_DIR: dataDir,
    RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: "silent",
    ...env,
  });
}

/** Starts a real server on 127.0.0.1:0 over a fresh database. */
export async function startTestServer(options: StartOptions = {}): Promise<TestServer> {
  if (options.env?.NATS_URL === SHARED_NATS_URL) await requireService("nats");
  const dataDir = mkdtempSync(join(tmpdir(), "rg-test-"));
  const config = testConfig(dataDir, options.env);
  const db = options.shared ?? (await createTestDatabase(options.kind ?? testDatabaseKind()));
  // The app must not close a shared database: hand it a wrapper whose destroy is a no-op.
  const database = options.shared ? { ...db.database, destroy: async () => {} } : db.database;
  const app = new App({ config, logger: options.logger ?? pino({ level: "silent" }), clock: options.clock, database, uiDir: options.uiDir });
  await app.start();
  const baseUrl = `http://127.0.0.1:${app.port}`;
  const grpc = (tok?: string) =>
    createGrpcTransport({ baseUrl, interceptors: authHeader(tok) as never });
  const connect = (tok?: string) =>
    createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: authHeader(tok) as never });
  return {
    app,
    db,
    config,
    baseUrl,
    grpc,
    connect,
    client: (service, tok, protocol = "grpc") =>
      createClient(service, protocol === "grpc" ? grpc(tok) : connect(tok)),
    async stop() {
      await app.stop(1_000);
      if (!options.shared) await db.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
