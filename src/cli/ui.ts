import { Command } from "commander";
import { UI_PATH } from "../server/static-ui.js";
import { EXIT } from "./context.js";
import { resolveSession } from "./session.js";
import { findSigningKey, mintConfiguredToken, OrgRoleError } from "./token.js";

/**
 * The sign-in link for a local user: the page's address with a token in the
 * fragment (`#token=…`), which browsers never send to a server; the page
 * moves it into the tab's sessionStorage and out of the address bar.
 */
export function signInLink(server: string, token: string, next?: string): string {
  const base = new URL(UI_PATH, /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `http://${server}`);
  const fragment = new URLSearchParams({ token });
  if (next !== undefined) fragment.set("next", next.startsWith("#") ? next : `#${next}`);
  return `${base.href}#${fragment}`;
}

/** `ui`: print a sign-in link to the page for a local user (local mode or an HS256 deployment). */
export function uiCommand(): Command {
  return new Command("ui")
    .description("print a sign-in link to the web page for a local user (token signed like `releasegate token`)")
    .option("--sub <id>", "user id (JWT sub)", "local-admin")
    .option("--name <username>", "username shown on the page")
    .option(
      "--org <org=role>",
      "organisation role, repeatable: acme=admin or acme=member (default acme=member)",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--ttl <duration>", "how long the sign-in lasts, e.g. 8h, 30m", "8h")
    .option("--open <route>", "the page to open, e.g. '/release/<intent id>?org=acme&project=api' (default the inbox)")
    .action(async (o: { sub: string; name?: string; org: string[]; ttl: string; open?: string }, cmd: Command) => {
      try {
        const orgs = o.org.length > 0 ? o.org : ["acme=member"];
        const key = findSigningKey();
        const token = await mintConfiguredToken({ sub: o.sub, name: o.name, orgs, service: false, ttl: o.ttl }, key);
        const server = resolveSession({ server: cmd.optsWithGlobals<{ server?: string }>().server }).server;
        process.stdout.write(`${signInLink(server, token, o.open)}\n`);
      } catch (err) {
        if (err instanceof OrgRoleError) cmd.error(`error: ${err.message}`, { exitCode: EXIT.usage });
        throw err;
      }
    });
}
