import { Command } from "commander";
import type { OrgRole } from "../auth/caller.js";
import { parseRole, ROLES } from "../auth/roles.js";
import { loadOrCreateLocalSecret, mintToken } from "../auth/token-verifier.js";
import { DEFAULT_DATA_DIR } from "../config.js";
import { EXIT } from "./context.js";

export interface TokenRequest {
  readonly sub: string;
  readonly name?: string;
  /** `ORG=admin` or `ORG=member` pairs. */
  readonly orgs: readonly string[];
  readonly service: boolean;
  /** Lifetime, e.g. `12h`. */
  readonly ttl: string;
}

export class OrgRoleError extends Error {
  override readonly name = "OrgRoleError";
}

/** `acme=admin` pairs → organisation roles (any rung of the ladder); a bare `acme` is a member. */
export function parseOrgRoles(pairs: readonly string[]): Record<string, OrgRole> {
  const roles: Record<string, OrgRole> = {};
  for (const pair of pairs) {
    const [org, value = "member"] = pair.split("=");
    const role = parseRole(value);
    if (!org || role === undefined)
      throw new OrgRoleError(`--org ${pair}: expected ORG=ROLE with ROLE one of ${ROLES.join(", ")}`);
    roles[org] = role;
  }
  return roles;
}

/**
 * Mints an HS256 token with RELEASEGATE_JWT_SECRET, else with the local-mode
 * secret in DATA_DIR (created when missing), honouring the configured issuer
 * and audience.
 */
export function mintConfiguredToken(req: TokenRequest, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const secret = env.RELEASEGATE_JWT_SECRET || loadOrCreateLocalSecret(env.DATA_DIR || DEFAULT_DATA_DIR).secret;
  return mintToken(secret, {
    sub: req.sub,
    username: req.name,
    orgRoles: parseOrgRoles(req.orgs),
    actorType: req.service ? "service" : "user",
    expiresIn: req.ttl,
    issuer: env.RELEASEGATE_JWT_ISSUER || undefined,
    audience: env.RELEASEGATE_JWT_AUDIENCE || undefined,
  });
}

/** `token`: mint an HS256 token (local mode secret in DATA_DIR, or RELEASEGATE_JWT_SECRET). */
export function tokenCommand(): Command {
  return new Command("token")
    .description(
      "mint a token for a local-mode server (secret in DATA_DIR) or an HS256 deployment (RELEASEGATE_JWT_SECRET)",
    )
    .option("--sub <id>", "user id (JWT sub)", "local-admin")
    .option("--name <username>", "username")
    .option(
      "--org <org=role>",
      "organisation role, repeatable: acme=admin or acme=member (default acme=admin)",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--service", "a service account (pipelines)")
    .option("--ttl <duration>", "lifetime, e.g. 12h, 30m", "12h")
    .action(async (o: { sub: string; name?: string; org: string[]; service?: boolean; ttl: string }, cmd: Command) => {
      try {
        const orgs = o.org.length > 0 ? o.org : ["acme=admin"];
        process.stdout.write(`${await mintConfiguredToken({ ...o, orgs, service: o.service ?? false })}\n`);
      } catch (err) {
        if (err instanceof OrgRoleError) cmd.error(`error: ${err.message}`, { exitCode: EXIT.usage });
        throw err;
      }
    });
}
