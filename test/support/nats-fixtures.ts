import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { waitFor } from "./approval-fixtures.js";
import { freePort } from "./pg-cluster.js";
import { natsServerBinary, requireService, SHARED_NATS_URL, serviceAvailable } from "./services.js";

/** The machine's NATS with JetStream (NATS_URL). */
export { SHARED_NATS_URL };

/** A connection to the machine's NATS; fails in one line naming NATS_URL when it is not reachable. */
export async function connectSharedNats(): Promise<NatsConnection> {
  await requireService("nats");
  return connect({ servers: SHARED_NATS_URL });
}

/** A stream name and subject prefix no other test uses. */
export function uniqueSignalNames(): { stream: string; prefix: string } {
  const tag = randomBytes(5).toString("hex");
  return { stream: `RG_TEST_${tag}`, prefix: `rgtest.${tag}` };
}

export interface StoredEvent {
  readonly seq: number;
  readonly subject: string;
  readonly msgId: string | undefined;
  readonly event: Record<string, unknown>;
}

/** Every message in `stream`, in stream order (empty when the stream does not exist). */
export async function readStream(nc: NatsConnection, stream: string): Promise<StoredEvent[]> {
  const jsm = await jetstreamManager(nc);
  let last: number;
  try {
    last = (await jsm.streams.info(stream)).state.last_seq;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return [];
    throw err;
  }
  const out: StoredEvent[] = [];
  for (let seq = 1; seq <= last; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m === null) continue;
    out.push({ seq: m.seq, subject: m.subject, msgId: m.header?.get("Nats-Msg-Id"), event: m.json() });
  }
  return out;
}

export async function deleteStream(url: string, stream: string): Promise<void> {
  // Nothing can have been created on a NATS that is not there; the test already failed saying so.
  if (url === SHARED_NATS_URL && !(await serviceAvailable("nats"))) return;
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}


async function canConnect(url: string): Promise<boolean> {
  try {
    const nc = await connect({ servers: url, timeout: 500, reconnect: false });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

/** A private nats-server with JetStream on a free port, that a test can stop and start again. */
export class NatsServerProcess {
  readonly port: number;
  readonly #storeDir: string;
  #child?: ChildProcess;

  private constructor(port: number) {
    this.port = port;
    this.#storeDir = mkdtempSync(join(tmpdir(), "rg-nats-"));
  }

  /** Reserves a port; the server is not running until start(). Needs nats-server (NATS_SERVER_BIN, PATH). */
  static async create(): Promise<NatsServerProcess> {
    await requireService("nats-server");
    return new NatsServerProcess(await freePort());
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts (again) on the same port and store directory; resolves once it accepts clients. */
  async start(): Promise<void> {
    this.#child = spawn(natsServerBinary() ?? "nats-server", ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.#storeDir], {
      stdio: "ignore",
    });
    await waitFor(async () => ((await canConnect(this.url)) ? true : undefined), 10_000, "nats-server to accept");
  }

  /** Kills the server and waits for the process to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.#child = undefined;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.#storeDir, { recursive: true, force: true });
  }
}
