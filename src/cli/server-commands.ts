import { Command } from "commander";
import { ConfigError, loadConfig } from "../config.js";
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
    return loadConfig(process.env, { purpose: "migrate" });
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
      const { migrateDatabase } = await import("../db/migrate.js");
      const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
      try {
        const applied = await migrateDatabase(database);
        process.stdout.write(
          applied.length === 0 ? "database is up to date\n" : applied.map((name) => `applied ${name}\n`).join(""),
        );
      } finally {
        await database.destroy();
      }
    });
}
