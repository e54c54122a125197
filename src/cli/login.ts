import { Code, ConnectError } from "@connectrpc/connect";
import { Command } from "commander";
import { decodeJwt } from "jose";
import { EnvironmentService } from "../gen/releasegate/v1/environment_pb.js";
import { type CliContext, cliContext, renderTable, runRpc } from "./context.js";
import { CliError, EXIT } from "./exit-codes.js";
import { resolveSession } from "./session.js";
import { type IdentityOptions, identityOptions, mintWithSource } from "./token.js";
import { readUserConfig, updateUserConfig } from "./user-config.js";

/**
 * Asks the server whether it accepts the context's token. The server checks
 * the token before anything else, so a request without a project answers
 * INVALID_ARGUMENT exactly when the token is good (UNAUTHENTICATED when not),
 * without touching the database.
 */
export async function verifyToken(ctx: CliContext): Promise<void> {
  try {
    await ctx.client(EnvironmentService).getProjectEnvironments({});
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.InvalidArgument) return;
    throw err;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").trim();
}

interface LoginOptions extends IdentityOptions {
  tokenStdin?: boolean;
  local?: boolean;
  token?: string;
}

/**
 * The token `login` was handed: exactly one of --token / --token-stdin /
 * --local (else RELEASEGATE_TOKEN); `signedWith` for one minted here.
 */
async function tokenToSave(o: LoginOptions, cmd: Command): Promise<{ token: string; signedWith?: string }> {
  const fromFlag = cmd.optsWithGlobals<{ token?: string }>().token;
  const chosen = [fromFlag ? "--token" : undefined, o.tokenStdin ? "--token-stdin" : undefined, o.local ? "--local" : undefined];
  const given = chosen.filter((c) => c !== undefined);
  if (given.length > 1) throw new CliError(`${given.join(" and ")} exclude each other: give one`, EXIT.usage);
  const identity = ["sub", "name", "org", "service", "secretFile"].filter((k) => cmd.getOptionValueSource(k) === "cli");
  if (!o.local && identity.length > 0)
    throw new CliError(`--${identity[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --local`, EXIT.usage);
  if (o.local) {
    const { token, source } = await mintWithSource(o);
    return { token, signedWith: source };
  }
  if (o.tokenStdin) {
    const token = await readStdin();
    if (token === "") throw new CliError("--token-stdin: standard input was empty", EXIT.usage);
    return { token };
  }
  const token = fromFlag || process.env.RELEASEGATE_TOKEN;
  if (!token)
    throw new CliError(
      "login needs a token: --token T, --token-stdin (e.g. `pass show rg | releasegate login --token-stdin`), " +
        "or --local --sub ID --org ORG=ROLE for a local-mode server",
      EXIT.usage,
    );
  return { token };
}

/** `login`: verify a token with the server, then save it (and the server) in the per-user config. */
export function loginCommand(): Command {
  return identityOptions(
    new Command("login")
      .description(
        "sign in: check a token with the server, then save server and token in the per-user config (mode 0600); later commands use them",
      )
      .option("--token-stdin", "read the token from standard input")
      .option("--local", "mint the token with the local-mode server's secret (DATA_DIR) for --sub and --org"),
    "7d",
  ).action((o: LoginOptions, cmd: Command) => {
    let server: string | undefined;
    return runRpc(
      async () => {
        const { token, signedWith } = await tokenToSave(o, cmd);
        const ctx = cliContext(cmd, { token });
        server = ctx.session.server;
        try {
          await verifyToken(ctx);
        } catch (err) {
          if (err instanceof ConnectError && err.code === Code.Unauthenticated)
            throw new CliError(
              `the server at ${server} refused the token (${err.rawMessage}); nothing was saved` +
                (signedWith === undefined
                  ? ""
                  : `; it was signed with ${signedWith}: is that this server's key? Run login where the server runs, or set DATA_DIR (or RELEASEGATE_JWT_SECRET) to the server's`),
              EXIT.auth,
              { cause: err },
            );
          throw err;
        }
        const path = ctx.session.configPath;
        updateUserConfig(path, (c) => ({ server, tokens: { ...c.tokens, [server as string]: token } }));
        const { sub, preferred_username: name } = decodeJwt(token);
        process.stdout.write(`signed in to ${server} as ${name && name !== sub ? `${sub} (${name})` : sub}\n`);
        process.stderr.write(`token saved in ${path}\n`);
      },
      () => server,
    );
  });
}

/** `logout`: forget the saved token of the server (the current one, or --server). */
export function logoutCommand(): Command {
  return new Command("logout")
    .description("remove the saved token of the server (--server, RELEASEGATE_SERVER or the one you logged in to)")
    .action((_o: unknown, cmd: Command) =>
      runRpc(async () => {
        const session = resolveSession({ server: cmd.optsWithGlobals<{ server?: string }>().server });
        const server = session.server;
        if (readUserConfig(session.configPath).tokens[server] === undefined) {
          process.stdout.write(`not signed in to ${server}: nothing to remove\n`);
        } else {
          updateUserConfig(session.configPath, (c) => ({
            ...c,
            tokens: Object.fromEntries(Object.entries(c.tokens).filter(([s]) => s !== server)),
          }));
          process.stdout.write(`signed out of ${server}\n`);
        }
        if (process.env.RELEASEGATE_TOKEN)
          process.stderr.write("note: RELEASEGATE_TOKEN is still set in this shell and is used before the config file\n");
      }),
    );
}

/** `whoami`: who the server takes you for (the token is checked with the server, then its claims shown). */
export function whoamiCommand(): Command {
  return new Command("whoami")
    .description("show the server, subject, username, organisations and roles of your token (checked with the server)")
    .action((_o: unknown, cmd: Command) => {
      let server: string | undefined;
      return runRpc(
        async () => {
          const ctx = cliContext(cmd);
          server = ctx.session.server;
          await verifyToken(ctx);
          const claims = decodeJwt(ctx.session.token ?? "");
          const orgRoles = (claims.org_roles ?? {}) as Record<string, string>;
          const groups = Array.isArray(claims.groups) ? (claims.groups as string[]) : [];
          const who = {
            server,
            subject: claims.sub ?? "",
            username: typeof claims.preferred_username === "string" ? claims.preferred_username : (claims.sub ?? ""),
            actorType: claims.actor_type === "service" ? "service" : "user",
            organisations: orgRoles,
            groups,
            expiresAt: claims.exp === undefined ? "" : new Date(claims.exp * 1000).toISOString(),
            tokenFrom: ctx.session.tokenSource ?? "",
          };
          if (ctx.output === "json") {
            process.stdout.write(`${JSON.stringify(who)}\n`);
            return;
          }
          process.stdout.write(
            renderTable([
              ["SERVER", who.server],
              ["SUBJECT", who.subject],
              ["USERNAME", who.username],
              ["TYPE", who.actorType],
              [
                "ORGANISATIONS",
                Object.entries(orgRoles)
                  .map(([org, role]) => `${org}=${role}`)
                  .join(", ") || "-",
              ],
              ["GROUPS", groups.join(", ") || "-"],
              ["EXPIRES", who.expiresAt || "-"],
              ["TOKEN FROM", who.tokenFrom],
            ]),
          );
        },
        () => server,
      );
    });
}
