import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";
import { CliError, EXIT } from "./exit-codes.js";

/**
 * The per-user CLI configuration (like gh's hosts.yml): the server to use
 * when none is given, and one token per server, so a token saved for one
 * server is never sent to another.
 */
export interface UserConfig {
  /** Base URL used when neither --server nor RELEASEGATE_SERVER is set. */
  readonly server?: string;
  /** Tokens by server base URL (as parseServerAddress writes it). */
  readonly tokens: Readonly<Record<string, string>>;
}

const UserConfigSchema = z.object({
  server: z.string().optional(),
  tokens: z.record(z.string(), z.string()).default({}),
});

/** Mode of the config file: it holds bearer tokens. */
export const CONFIG_FILE_MODE = 0o600;
/** Mode of the directory the CLI creates for it. */
export const CONFIG_DIR_MODE = 0o700;

/**
 * Where the config lives: RELEASEGATE_CONFIG, else
 * $XDG_CONFIG_HOME/releasegate/config.json, else ~/.config/releasegate/config.json.
 */
export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RELEASEGATE_CONFIG) return env.RELEASEGATE_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "releasegate", "config.json");
}

/** Reads the config; a missing file is an empty config, an unreadable one a usage error naming it. */
export function readUserConfig(path: string): UserConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return { tokens: {} };
    throw new CliError(`cannot read the CLI config ${path}: ${(err as Error).message}`, EXIT.usage, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path} is not JSON: fix it or delete it and run \`releasegate login\` again`, EXIT.usage, {
      cause: err,
    });
  }
  const parsed = UserConfigSchema.safeParse(json);
  if (!parsed.success)
    throw new CliError(
      `${path}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`).join("; ")}: fix it or delete it and run \`releasegate login\` again`,
      EXIT.usage,
    );
  return parsed.data;
}

/**
 * Writes the config atomically (a reader sees the old or the new file, never
 * half of one) with mode 0600; a directory it creates gets 0700.
 */
export function writeUserConfig(path: string, config: UserConfig): void {
  const dir = dirname(path);
  // Only a directory made here is chmod'ed: RELEASEGATE_CONFIG may point into a shared one.
  const created = mkdirSync(dir, { recursive: true, mode: CONFIG_DIR_MODE });
  if (created !== undefined) chmodSync(dir, CONFIG_DIR_MODE);
  const partial = join(dir, `.config.json.${process.pid}.${randomBytes(4).toString("hex")}`);
  try {
    writeFileSync(partial, `${JSON.stringify(config, null, 2)}\n`, { mode: CONFIG_FILE_MODE });
    // The umask can only remove bits; chmod in case the file pre-existed with others.
    chmodSync(partial, CONFIG_FILE_MODE);
    renameSync(partial, path);
  } finally {
    rmSync(partial, { force: true });
  }
}

/** Reads, changes and writes the config in one step. */
export function updateUserConfig(path: string, change: (config: UserConfig) => UserConfig): UserConfig {
  const next = change(readUserConfig(path));
  writeUserConfig(path, next);
  return next;
}
