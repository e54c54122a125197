import { execFile, execFileSync } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ServiceUnavailableError } from "./services.js";

const run = promisify(execFile);

/** The newest installed Postgres server binaries (Debian layout). */
function binDir(): string {
  let versions: string[] = [];
  try {
    versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  } catch {
    // No directory: reported below like an empty one.
  }
  if (versions.length === 0)
    throw new ServiceUnavailableError(
      "Postgres server binaries (initdb, pg_ctl) are not under /usr/lib/postgresql/<version>/bin (install Postgres: the fault tests run a cluster of their own)",
    );
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * A throwaway Postgres cluster (own data directory and port) that a fault
 * test may stop hard and start again without touching the machine's server.
 * Postgres refuses to run as root: when we are root, commands run as the
 * `postgres` user.
 */
export class PgCluster {
  readonly port: number;
  readonly #dir: string;
  readonly #bin = binDir();

  private constructor(port: number, dir: string) {
    this.port = port;
    this.#dir = dir;
  }

  /** initdb (trust auth, no fsync: a test cluster) on a free port; not started. */
  static async create(): Promise<PgCluster> {
    const dir = mkdtempSync(join(tmpdir(), "rg-pgc-"));
    const cluster = new PgCluster(await freePort(), dir);
    if (process.getuid?.() === 0) chownSync(dir, uidOf("postgres"), gidOf("postgres"));
    await cluster.#pg("initdb", ["-D", cluster.#data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    return cluster;
  }

  get #data(): string {
    return join(this.#dir, "data");
  }

  /** URL of the cluster's `postgres` database. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async #pg(tool: string, args: string[]): Promise<void> {
    const cmd = join(this.#bin, tool);
    if (process.getuid?.() === 0) await run("runuser", ["-u", "postgres", "--", cmd, ...args]);
    else await run(cmd, args);
  }

  /** Starts and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.#dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    await this.#pg("pg_ctl", ["-D", this.#data, "-o", options, "-l", join(this.#dir, "log"), "-w", "start"]);
  }

  /** Stops; `immediate` is a crash from the clients' point of view. */
  async stop(mode: "immediate" | "fast" = "immediate"): Promise<void> {
    await this.#pg("pg_ctl", ["-D", this.#data, "-m", mode, "-w", "stop"]).catch(() => undefined);
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

function idOf(flag: "-u" | "-g", name: string): number {
  // `id` is in coreutils; synchronous is fine once per cluster.
  return Number(execFileSync("id", [flag, name]).toString().trim());
}
const uidOf = (name: string) => idOf("-u", name);
const gidOf = (name: string) => idOf("-g", name);
