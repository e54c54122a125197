import { type DestinationStream, type Logger, pino } from "pino";
import { PinoPretty } from "pino-pretty";

export type { Logger };

/** Log format: JSON lines (default when stdout is not a terminal) or human-readable. */
export type LogFormat = "json" | "pretty";

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
  if (format === "pretty") return pino(options, PinoPretty({ colorize: destination === undefined && process.stdout.isTTY === true, destination: destination ?? 1 }));
  return destination === undefined ? pino(options) : pino(options, destination);
}
