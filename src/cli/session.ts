import { DEFAULT_SERVER, parseServerAddress } from "./server-address.js";
import { readUserConfig, type UserConfig, userConfigPath } from "./user-config.js";

/** Where a setting came from, for messages ("--server", "RELEASEGATE_TOKEN", "config file …"). */
export type Source = string;

/** The server and token a command uses: flag > environment > config file (> default server). */
export interface Session {
  readonly server: string;
  readonly serverSource: Source;
  readonly token?: string;
  readonly tokenSource?: Source;
  readonly configPath: string;
}

export interface SessionFlags {
  readonly server?: string;
  readonly token?: string;
}

const given = (v: string | undefined): v is string => v !== undefined && v !== "";

/**
 * Resolves the session. The config file's token is the one saved for the
 * resolved server only: `--server other` never sends the token of the
 * server you logged in to. The file is read only when a flag or variable
 * leaves something open, so a pipeline that sets both never depends on it.
 */
export function resolveSession(flags: SessionFlags, env: NodeJS.ProcessEnv = process.env): Session {
  const configPath = userConfigPath(env);
  let loaded: UserConfig | undefined;
  const config = () => {
    loaded ??= readUserConfig(configPath);
    return loaded;
  };
  const configSource = `config file ${configPath}`;
  const [rawServer, serverSource] = given(flags.server)
    ? [flags.server, "--server"]
    : given(env.RELEASEGATE_SERVER)
      ? [env.RELEASEGATE_SERVER, "RELEASEGATE_SERVER"]
      : given(config().server)
        ? [config().server as string, configSource]
        : [DEFAULT_SERVER, "default"];
  const server = parseServerAddress(rawServer, serverSource);
  const [token, tokenSource] = given(flags.token)
    ? [flags.token, "--token"]
    : given(env.RELEASEGATE_TOKEN)
      ? [env.RELEASEGATE_TOKEN, "RELEASEGATE_TOKEN"]
      : given(config().tokens[server])
        ? [config().tokens[server], configSource]
        : [undefined, undefined];
  return { server, serverSource, token, tokenSource, configPath };
}
