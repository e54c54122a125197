import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { PolicyService } from "../../src/gen/forest/v1/policy_pb.js";
import { waitFor } from "./approval-fixtures.js";
import { ensureBuilt } from "./build.js";
import { freePort } from "./pg-cluster.js";
import { TEST_JWT_SECRET, token } from "./server.js";
import { requireService, SHARED_NATS_URL } from "./services.js";

/**
 * The built server (`node dist/src/main.js`, what `npm start` runs) as a
 * separate OS process, so a test can SIGKILL it and start it again on the
 * same port and database. `create` builds dist/ first when it is stale.
 */
export class ServerProcess {
  readonly port: number;
  readonly #env: Record<string, string>;
  readonly #dataDir: string;
  #child?: ChildProcess;

  private constructor(port: number, metricsPort: number, env: Record<string, string>) {
    this.port = port;
    this.#dataDir = mkdtempSync(join(tmpdir(), "rg-proc-"));
    this.#env = {
      ...env,
      HOST: "127.0.0.1",
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      DATA_DIR: this.#dataDir,
      RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: "warn",
    };
  }

  /** `env` must carry DATABASE_URL (and NATS_* when wanted). */
  static async create(env: Record<string, string>): Promise<ServerProcess> {
    if (env.NATS_URL === SHARED_NATS_URL) await requireService("nats");
    await ensureBuilt();
    return new ServerProcess(await freePort(), await freePort(), env);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts and resolves once an RPC is answered. */
  async start(): Promise<void> {
    this.#child = spawn(process.execPath, ["dist/src/main.js"], {
      cwd: join(import.meta.dirname, "..", ".."),
      env: { ...process.env, ...this.#env },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const client = createClient(
      PolicyService,
      createGrpcTransport({
        baseUrl: this.baseUrl,
        interceptors: [
          (next) => async (req) => {
            req.header.set("authorization", `Bearer ${await token({ sub: "probe", orgs: { acme: "member" } })}`);
            return next(req);
          },
        ],
      }),
    );
    const child = this.#child;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
        return client.listPolicies({ project: { organisation: "acme", project: "probe" } }).then(
          () => true,
          () => undefined,
        );
      },
      60_000,
      "the server process to answer",
    );
  }

  /** SIGKILL: no drain, no goodbye. Resolves when the process is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.#dataDir, { recursive: true, force: true });
  }
}
