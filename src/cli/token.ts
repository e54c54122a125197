import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command } from "commander";
import type { OrgRole } from "../auth/caller.js";
import { parseRole, ROLES } from "../auth/roles.js";
import { localSecretPath, mintToken, readLocalSecret } from "../auth/token-verifier.js";
import { loadConfig } from "../config.js";
import { runRpc } from "./context.js";
import { CliError, EXIT } from "./exit-codes.js";

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

/** The key a token is signed with, and where it came from (said on stderr). */
export interface SigningKey {
  readonly secret: string;
  /** e.g. `RELEASEGATE_JWT_SECRET` or `/abs/path/.releasegate/jwt-secret`. */
  readonly source: string;
  readonly issuer?: string;
  readonly audience?: string;
}

/**
 * Finds the key the server verifies local tokens with, the way the server
 * does: its configuration parsed from the same environment (loadConfig, so
 * DATA_DIR and its default are the server's), RELEASEGATE_JWT_SECRET first,
 * else the local-mode secret under DATA_DIR. Never creates a secret: one no
 * server uses would sign tokens every server refuses. `secretFile` (--secret-file)
 * names a secret file directly, e.g. a server's DATA_DIR/jwt-secret elsewhere.
 */
export function findSigningKey(env: NodeJS.ProcessEnv = process.env, secretFile?: string): SigningKey {
  const config = loadConfig(env, { purpose: "migrate" });
  const claims = { issuer: config.jwt.issuer, audience: config.jwt.audience };
  if (secretFile !== undefined) {
    let secret: string;
    try {
      secret = readFileSync(secretFile, "utf8").trim();
    } catch (err) {
      throw new CliError(`--secret-file ${secretFile}: ${(err as Error).message}`, EXIT.usage, { cause: err });
    }
    if (secret.length < 32) throw new CliError(`--secret-file ${secretFile}: a secret of at least 32 characters`, EXIT.usage);
    return { secret, source: resolve(secretFile), ...claims };
  }
  if (config.jwt.secret !== undefined) return { secret: config.jwt.secret, source: "RELEASEGATE_JWT_SECRET", ...claims };
  const dataDir = resolve(config.dataDir);
  const local = readLocalSecret(dataDir);
  if (local === undefined)
    throw new CliError(
      `no local-mode secret at ${localSecretPath(dataDir)} (DATA_DIR=${config.dataDir}${env.DATA_DIR ? "" : ", the default, relative to this directory"}): ` +
        "start the server once in local mode with the same DATA_DIR (`npm start` in the repository creates it), " +
        "run this in the directory the server runs in, set DATA_DIR to the server's, " +
        "or pass --secret-file PATH / set RELEASEGATE_JWT_SECRET",
      EXIT.usage,
    );
  return { secret: local.secret, source: local.path, ...claims };
}

/** Mints an HS256 token with the key of findSigningKey. */
export function mintConfiguredToken(req: TokenRequest, key: SigningKey): Promise<string> {
  return mintToken(key.secret, {
    sub: req.sub,
    username: req.name,
    orgRoles: parseOrgRoles(req.orgs),
    actorType: req.service ? "service" : "user",
    expiresIn: req.ttl,
    issuer: key.issuer,
    audience: key.audience,
  });
}

/** The options `token` and `login --local` share: who the token is for. */
export function identityOptions(cmd: Command, defaultTtl: string): Command {
  return cmd
    .option("--sub <id>", "user id (JWT sub)", "local-admin")
    .option("--name <username>", "username")
    .option(
      "--org <org=role>",
      `organisation role, repeatable: ORG=ROLE with ROLE one of ${ROLES.join(", ")} (default acme=admin)`,
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--service", "a service account (pipelines)")
    .option("--ttl <duration>", "lifetime, e.g. 12h, 30m, 7d", defaultTtl)
    .option("--secret-file <path>", "sign with this secret file instead of the server's DATA_DIR/jwt-secret");
}

export interface IdentityOptions {
  sub: string;
  name?: string;
  org: string[];
  service?: boolean;
  ttl: string;
  secretFile?: string;
}

/** Mints the token the identity options describe; says on stderr which key signed it. */
export async function mintFromOptions(o: IdentityOptions): Promise<string> {
  return (await mintWithSource(o)).token;
}

/** mintFromOptions, also returning which key signed (login names it when the server refuses the token). */
export async function mintWithSource(o: IdentityOptions): Promise<{ token: string; source: string }> {
  const key = findSigningKey(process.env, o.secretFile);
  const orgs = o.org.length > 0 ? o.org : ["acme=admin"];
  let token: string;
  try {
    token = await mintConfiguredToken({ ...o, orgs, service: o.service ?? false }, key);
  } catch (err) {
    if (err instanceof OrgRoleError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
  process.stderr.write(`signed with ${key.source}\n`);
  return { token, source: key.source };
}

/** `token`: mint an HS256 token with the server's key (local-mode secret in DATA_DIR, or RELEASEGATE_JWT_SECRET). */
export function tokenCommand(): Command {
  return identityOptions(
    new Command("token").description(
      "mint a token for a local-mode server (its secret in DATA_DIR; never creates one) or an HS256 deployment (RELEASEGATE_JWT_SECRET)",
    ),
    "12h",
  ).action((o: IdentityOptions) =>
    runRpc(async () => {
      process.stdout.write(`${await mintFromOptions(o)}\n`);
    }),
  );
}
