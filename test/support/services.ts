import { accessSync, constants } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { delimiter, join } from "node:path";
import pg from "pg";
import { inject } from "vitest";

/**
 * The services `npm test` needs besides Node, where the tests look for them,
 * and one probe each. vitest's globalSetup (test/support/global-setup.ts)
 * probes once per run and provides the results; fixtures call
 * `requireService` first, so a test file whose service is missing fails at
 * once with one line naming the service and the variable to set, instead of
 * a wall of connection errors and timeouts.
 */

/** The Postgres the tests create their databases on (DATABASE_URL, else the machine's). */
export const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The machine's NATS with JetStream (NATS_URL). */
export const SHARED_NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** Where the fault tests look for nats-server when NATS_SERVER_BIN and PATH have none. */
export const FALLBACK_NATS_SERVER = "/usr/sbin/nats-server";

const PROBE_TIMEOUT_MS = 3_000;

export type ServiceName = "postgres" | "nats" | "nats-server";

/** What a probe found: available, or the one line that says what is missing and what to set. */
export type ServiceStatus = { readonly ok: true } | { readonly ok: false; readonly message: string };

export type ServiceReport = Readonly<Record<ServiceName, ServiceStatus>>;

declare module "vitest" {
  export interface ProvidedContext {
    services: ServiceReport;
  }
}

/**
 * A service the tests need is missing. The stack is only the message: the
 * line says everything, and a stack trace would bury it.
 */
export class ServiceUnavailableError extends Error {
  override readonly name = "ServiceUnavailableError";
  constructor(message: string) {
    super(message);
    this.stack = `${this.name}: ${message}`;
  }
}

/** `host:port` of a URL, without credentials. */
function hostPort(url: string, defaultPort: number): string {
  try {
    const u = new URL(url.includes("://") ? url : `nats://${url}`);
    return `${u.hostname}:${u.port || defaultPort}`;
  } catch {
    return url;
  }
}

function reason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return typeof e.code === "string" ? e.code : (e.message ?? String(err)).split("\n")[0]!;
}

/** Connects and runs `select 1` on ADMIN_DATABASE_URL within a few seconds. */
export async function probePostgres(url = ADMIN_DATABASE_URL): Promise<ServiceStatus> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
    query_timeout: PROBE_TIMEOUT_MS,
  });
  // A failed connect also emits "error"; without a listener it would be thrown.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
    return { ok: true };
  } catch (err) {
    return {
      ok: false,
      message: `Postgres is not reachable at ${hostPort(url, 5432)} (set DATABASE_URL to a Postgres the tests may create databases on): ${reason(err)}`,
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Opens a TCP connection to NATS_URL's first server and reads its INFO line: NATS, with JetStream. */
export function probeNats(url = SHARED_NATS_URL): Promise<ServiceStatus> {
  const first = url.split(",")[0]!.trim();
  const [host, port] = hostPort(first, 4222).split(/:(?=\d+$)/) as [string, string];
  const unreachable = (why: string): ServiceStatus => ({
    ok: false,
    message: `NATS is not reachable at ${host}:${port} (set NATS_URL to a NATS server with JetStream, e.g. nats-server -js): ${why}`,
  });
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: host.replace(/^\[|\]$/g, ""), port: Number(port) });
    let received = "";
    const done = (status: ServiceStatus) => {
      socket.destroy();
      resolve(status);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(unreachable("no INFO within 3 s")));
    socket.on("error", (err) => done(unreachable(reason(err))));
    socket.on("data", (d: Buffer) => {
      received += d.toString();
      const end = received.indexOf("\r\n");
      if (end < 0) return;
      const line = received.slice(0, end);
      if (!line.startsWith("INFO ")) return done(unreachable("it does not speak the NATS protocol"));
      let info: { jetstream?: boolean };
      try {
        info = JSON.parse(line.slice(5)) as { jetstream?: boolean };
      } catch {
        return done(unreachable("its INFO line is not JSON"));
      }
      done(
        info.jetstream === true
          ? { ok: true }
          : {
              ok: false,
              message: `NATS at ${host}:${port} has no JetStream (start it with nats-server -js, or set NATS_URL to one that has)`,
            },
      );
    });
  });
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The nats-server the fault tests start: NATS_SERVER_BIN, else `nats-server` on PATH, else /usr/sbin/nats-server. */
export function natsServerBinary(): string | undefined {
  const configured = process.env.NATS_SERVER_BIN;
  if (configured !== undefined && configured !== "") return executable(configured) ? configured : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter))
    if (dir !== "" && executable(join(dir, "nats-server"))) return join(dir, "nats-server");
  return executable(FALLBACK_NATS_SERVER) ? FALLBACK_NATS_SERVER : undefined;
}

export function probeNatsServer(): ServiceStatus {
  if (natsServerBinary() !== undefined) return { ok: true };
  const configured = process.env.NATS_SERVER_BIN;
  return {
    ok: false,
    message:
      configured !== undefined && configured !== ""
        ? `nats-server is not executable at ${configured} (set NATS_SERVER_BIN to the nats-server binary the fault tests start)`
        : `nats-server is not on PATH or at ${FALLBACK_NATS_SERVER} (install it, or set NATS_SERVER_BIN to the binary the fault tests start)`,
  };
}

/** Probes every service (at most a few seconds when one does not answer). */
export async function probeServices(): Promise<ServiceReport> {
  const [postgres, nats] = await Promise.all([probePostgres(), probeNats()]);
  return { postgres, nats, "nats-server": probeNatsServer() };
}

let probedHere: Promise<ServiceReport> | undefined;

/** The globalSetup's findings; probed in this worker when run without it (another config). */
function report(): Promise<ServiceReport> {
  let provided: ServiceReport | undefined;
  try {
    provided = inject("services");
  } catch {
    provided = undefined;
  }
  if (provided !== undefined) return Promise.resolve(provided);
  probedHere ??= probeServices();
  return probedHere;
}

/** Whether a service answered the run's probe. */
export async function serviceAvailable(name: ServiceName): Promise<boolean> {
  return (await report())[name].ok;
}

/**
 * Throws a one-line ServiceUnavailableError when the service did not answer
 * the probe: call it first in the fixtures that need the service.
 */
export async function requireService(name: ServiceName): Promise<void> {
  const status = (await report())[name];
  if (!status.ok) throw new ServiceUnavailableError(status.message);
}
