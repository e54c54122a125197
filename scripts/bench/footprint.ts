import { rmSync } from "node:fs";
import { BENCH_JWT_SECRET, createBenchDatabase } from "./fixtures.js";
import { type BenchSettings, median } from "./load.js";
import { startServerProcess } from "./server-process.js";

/** Median milliseconds from spawn to "listening", by kind of start. */
export type StartupResult = readonly { readonly kind: string; readonly ms: number }[];

/**
 * A new then reused PGlite data directory; an empty (unmigrated) then
 * migrated Postgres database; and the starts already made (`made`), which
 * are all the smoke run reports.
 */
export async function benchStartup(settings: BenchSettings, pgliteDir: string, made: StartupResult): Promise<StartupResult> {
  if (settings.quick) return made;
  const times = new Map<string, number[]>();
  const time = async (kind: string, env: Record<string, string>) => {
    const server = await startServerProcess({ RELEASEGATE_JWT_SECRET: BENCH_JWT_SECRET, ...env });
    await server.stop();
    times.set(kind, [...(times.get(kind) ?? []), server.startupMs]);
  };
  for (let r = 0; r < 3; r++) {
    rmSync(pgliteDir, { recursive: true, force: true });
    await time("PGlite, new data directory", { DATA_DIR: pgliteDir });
    await time("PGlite, existing data directory", { DATA_DIR: pgliteDir });
    const database = await createBenchDatabase();
    try {
      const env = { DATABASE_URL: database.url, DATA_DIR: pgliteDir };
      await time("Postgres, empty database (migrations run)", env);
      await time("Postgres, migrated database", env);
    } finally {
      await database.drop();
    }
  }
  return [...times].map(([kind, ms]) => ({ kind, ms: median(ms) })).concat(made);
}
