import { App } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./logger.js";

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) console.error(`config error: ${p}`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, config.logFormat);
  const app = new App({ config, logger });
  // Signal handlers first: "listening" is logged inside start(), and a SIGTERM
  // right after it (an orchestrator, a test) must still shut down gracefully.
  const started = app.start();

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    // Health turns NOT_SERVING, in-flight RPCs get SHUTDOWN_GRACE_MS, then relay, NATS and pool close.
    // A signal during start-up stops once start() has settled (a failed start exits through main's catch).
    started
      .then(() => app.stop())
      .then(
        () => {
          logger.info("stopped");
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  await started;
}

main().catch((err: unknown) => {
  console.error("releasegate failed to start:", err);
  process.exit(1);
});
