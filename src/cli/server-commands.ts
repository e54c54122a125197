import { Command } from "commander";
import type { OrgRole } from "../auth/caller.js";
import { loadOrCreateLocalSecret, mintToken } from "../auth/token-verifier.js";
import { ConfigError, DEFAULT_DATA_DIR, loadConfig } from "../config.js";
import { EXIT } from "./context.js";

/** `serve`: the server, configured by environment variables (see docs/operator.md). */
export function serveCommand(): Command {
  return new Command("serve")
    .description("run the server (configured by environment variables: PORT, DATABASE_URL, NATS_URL, ...)")
    .option("--port <port>", "gRPC/Connect port (env PORT, default 50051)")
    .option("--metrics-port <port>", "admin port for /healthz, /readyz, /metrics (env METRICS_PORT, default 9464)")
    .action(async (o: { port?: string; metricsPort?: string }) => {
      if (o.port !== undefined) process.env.PORT = o.port;
      if (o.metricsPort !== undefined) process.env.METRICS_PORT = o.metricsPort;
      // main.ts is the server's entry point: it reads the environment once and runs until SIGTERM.
      await import("../main.js");
    });
}

function configOrExit() {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) process.stderr.write(`config error: ${p}\n`);
    process.exit(EXIT.usage);
  }
}

/** `migrate`: apply pending SQL migrations to DATABASE_URL (or the PGlite in DATA_DIR) and exit. */
export function migrateCommand(): Command {
  return new Command("migrate")
    .description("apply pending database migrations (DATABASE_URL, else embedded PGlite in DATA_DIR) and exit")
    .action(async () => {
      const config = configOrExit();
      // Loaded on use: client commands start faster without the database drivers.
      const { openDatabase } = await import("../db/database.js");
      const { migrateToLatest } = await import("../db/migrate.js");
      const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
      try {
        const applied = await migrateToLatest(database.db);
        process.stdout.write(
          applied.length === 0 ? "database is up to date\n" : applied.map((name) => `applied ${name}\n`).join(""),
        );
      } finally {
        await database.destroy();
      }
    });
}

/** `token`: mint an HS256 token (local mode secret in DATA_DIR, or RELEASEGATE_JWT_SECRET). */
export function tokenCommand(): Command {
  return new Command("token")
    .description("mint a token for a local-mode server (secret in DATA_DIR) or an HS256 deployment (RELEASEGATE_JWT_SECRET)")
    .option("--sub <id>", "user id (JWT sub)", "local-admin")
    .option("--name <username>", "username")
    .option(
      "--org <org=role>",
      "organisation role, repeatable: acme=admin or acme=member",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--service", "a service account (pipelines)")
    .option("--ttl <duration>", "lifetime, e.g. 12h, 30m", "12h")
    .action(async (o: { sub: string; name?: string; org: string[]; service?: boolean; ttl: string }, cmd: Command) => {
      const orgRoles: Record<string, OrgRole> = {};
      for (const pair of o.org.length > 0 ? o.org : ["acme=admin"]) {
        const [org, role = "member"] = pair.split("=");
        if (!org || (role !== "member" && role !== "admin"))
          cmd.error(`error: --org ${pair}: expected ORG=member or ORG=admin`, { exitCode: EXIT.usage });
        orgRoles[org as string] = role as OrgRole;
      }
      const secret =
        process.env.RELEASEGATE_JWT_SECRET || loadOrCreateLocalSecret(process.env.DATA_DIR || DEFAULT_DATA_DIR).secret;
      const token = await mintToken(secret, {
        sub: o.sub,
        username: o.name,
        orgRoles,
        actorType: o.service ? "service" : "user",
        expiresIn: o.ttl,
        issuer: process.env.RELEASEGATE_JWT_ISSUER || undefined,
        audience: process.env.RELEASEGATE_JWT_AUDIENCE || undefined,
      });
      process.stdout.write(`${token}\n`);
    });
}
