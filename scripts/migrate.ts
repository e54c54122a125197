/**
 * Applies pending migrations to the configured database and exits: the same
 * configuration as the server (DATABASE_URL, else embedded PGlite under
 * DATA_DIR). Safe to run from several processes at once (Migrator's lock).
 *
 *   npm run migrate
 */
import { ConfigError, loadConfig } from "../src/config.js";
import { openDatabase } from "../src/db/database.js";
import { migrateDatabase } from "../src/db/migrate.js";

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env, { purpose: "migrate" });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  for (const p of err.problems) console.error(`config error: ${p}`);
  process.exit(2);
}
const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
try {
  const applied = await migrateDatabase(database);
  console.log(
    applied.length === 0
      ? `${database.description}: schema up to date`
      : `${database.description}: applied ${applied.join(", ")}`,
  );
} catch (err) {
  console.error(`migration failed on ${database.description}:`, err);
  process.exitCode = 1;
} finally {
  await database.destroy();
}
