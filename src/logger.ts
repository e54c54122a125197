import { type Logger, pino } from "pino";

export type { Logger };

/** JSON logs by default (one object per line); pretty only on a TTY when pino-pretty is installed. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "releasegate" },
    redact: { paths: ["authorization", "*.authorization", "token", "*.token"], remove: true },
  });
}
