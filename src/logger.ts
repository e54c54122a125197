import { createRequire } from "node:module";
import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/** Log format: JSON lines (default when stdout is not a terminal) or human-readable. */
export type LogFormat = "json" | "pretty";

/**
 * pino-pretty (CommonJS) is required only when pretty output is asked for:
 * a server writing JSON, the production case, does not carry it in memory.
 */
const require = createRequire(import.meta.url);

/**
 * JSON logs by default, one object per line; pretty (pino-pretty, in-process,
 * no worker thread) when stdout is a TTY or `format` says so. Secrets and
 * free text are removed: authorization headers, tokens, vote comments.
 */
export function createLogger(
  level: string,
  format: LogFormat = process.stdout.isTTY ? "pretty" : "json",
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    base: { service: "releasegate" },
    redact: {
      paths: ["authorization", "*.authorization", "token", "*.token", "comment", "*.comment"],
      remove: true,
    },
  };
  if (format === "pretty") {
    const { PinoPretty } = require("pino-pretty") as typeof import("pino-pretty");
    return pino(options, PinoPretty({ colorize: destination === undefined && process.stdout.isTTY === true, destination: destination ?? 1 }));
  }
  return destination === undefined ? pino(options) : pino(options, destination);
}
