import { randomBytes } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  createRemoteJWKSet,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  SignJWT,
} from "jose";
import { DEFAULT_JWT_GROUPS_CLAIM, type JwtConfig } from "../config.js";
import { UnauthenticatedError } from "../errors.js";
import type { ActorType, Caller, OrgRole } from "./caller.js";
import { parseRole } from "./roles.js";

/** File under DATA_DIR holding the local-mode HS256 secret. */
export const LOCAL_SECRET_FILE = "jwt-secret";

export interface TokenVerifier {
  verify(token: string): Promise<Caller>;
  /** "hs256" | "public-key" | "jwks" | "local" */
  readonly mode: string;
}

/** A local secret shorter than this (e.g. an empty file) is refused, never used as a key. */
const LOCAL_SECRET_MIN_CHARS = 32;

/** Where the local-mode secret of a server with this DATA_DIR lives. */
export function localSecretPath(dataDir: string): string {
  return join(dataDir, LOCAL_SECRET_FILE);
}

/**
 * Reads the local secret under dataDir without ever creating it (the CLI's
 * `token` and `login --local`: a secret no server uses would sign tokens
 * every server refuses). Undefined when there is no secret file.
 */
export function readLocalSecret(dataDir: string): { secret: string; path: string } | undefined {
  const path = localSecretPath(dataDir);
  if (!existsSync(path)) return undefined;
  const secret = readFileSync(path, "utf8").trim();
  if (secret.length < LOCAL_SECRET_MIN_CHARS)
    throw new Error(
      `${path}: local JWT secret is shorter than ${LOCAL_SECRET_MIN_CHARS} characters; delete the file to create a new one`,
    );
  return { secret, path };
}

/**
 * Reads the local secret under dataDir, creating it on first start. Two
 * processes starting together (two replicas on one DATA_DIR) end up with the
 * same secret, and neither ever reads a half-written file.
 */
export function loadOrCreateLocalSecret(dataDir: string): { secret: string; created: boolean } {
  const path = localSecretPath(dataDir);
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true });
    const secret = randomBytes(32).toString("base64url");
    // Write aside, then link into place: link() is atomic and fails when the
    // file exists, so a concurrent reader sees no file or the whole secret.
    const partial = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    writeFileSync(partial, `${secret}\n`, { mode: 0o600 });
    try {
      linkSync(partial, path);
      return { secret, created: true };
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    } finally {
      rmSync(partial, { force: true });
    }
  }
  const existing = readLocalSecret(dataDir);
  if (existing === undefined) throw new Error(`${path}: local JWT secret disappeared while it was being read`);
  return { secret: existing.secret, created: false };
}

/** A token listing more identity-provider groups than this is refused (a claim that size is a mistake). */
export const IDP_GROUPS_MAX = 1000;

/** The identity-provider groups in `claims[claim]`: absent is none; anything but an array of strings is refused. */
function idpGroupsFromClaims(claims: JWTPayload, claim: string): readonly string[] {
  const raw = claims[claim];
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || !raw.every((g): g is string => typeof g === "string"))
    throw new UnauthenticatedError(`token claim ${claim} must be an array of strings (identity-provider groups)`);
  if (raw.length > IDP_GROUPS_MAX)
    throw new UnauthenticatedError(`token claim ${claim} lists more than ${IDP_GROUPS_MAX} groups`);
  return Object.freeze([...new Set(raw)]);
}

/**
 * Maps verified claims to a Caller; rejects tokens without the claims we
 * need. `groupsClaim` names the claim holding identity-provider groups
 * (default `groups`).
 */
export function callerFromClaims(claims: JWTPayload, groupsClaim = DEFAULT_JWT_GROUPS_CLAIM): Caller {
  if (typeof claims.sub !== "string" || claims.sub === "")
    throw new UnauthenticatedError("token has no subject");
  const username =
    typeof claims.preferred_username === "string" && claims.preferred_username !== ""
      ? claims.preferred_username
      : typeof claims.name === "string" && claims.name !== ""
        ? claims.name
        : claims.sub;
  const actorType: ActorType = claims.actor_type === "service" ? "service" : "user";
  const orgRoles = new Map<string, OrgRole>();
  const raw = claims.org_roles;
  if (raw !== undefined && (typeof raw !== "object" || raw === null || Array.isArray(raw)))
    throw new UnauthenticatedError("token claim org_roles must be an object");
  // Roles outside the ladder are no role: the caller is refused there, never crashed on.
  for (const [org, value] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    const role = parseRole(value);
    if (role !== undefined) orgRoles.set(org, role);
  }
  return { userId: claims.sub, username, actorType, orgRoles, idpGroups: idpGroupsFromClaims(claims, groupsClaim) };
}

export async function createTokenVerifier(config: JwtConfig, dataDir: string): Promise<TokenVerifier> {
  const options = {
    issuer: config.issuer,
    audience: config.audience,
  };
  let key: Uint8Array | Awaited<ReturnType<typeof importSPKI>> | JWTVerifyGetKey;
  let algorithms: string[];
  let mode: string;
  if (config.secret !== undefined) {
    key = new TextEncoder().encode(config.secret);
    algorithms = ["HS256"];
    mode = "hs256";
  } else if (config.publicKey !== undefined) {
    key = await importSPKI(config.publicKey, config.algorithm);
    algorithms = [config.algorithm];
    mode = "public-key";
  } else if (config.jwksUrl !== undefined) {
    key = createRemoteJWKSet(new URL(config.jwksUrl));
    algorithms = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"];
    mode = "jwks";
  } else {
    // loadConfig refuses this already; a hand-built config must not fall open either.
    if (config.localMode !== true)
      throw new Error(
        "no JWT key configured and local mode is off: set RELEASEGATE_JWT_SECRET, RELEASEGATE_JWT_PUBLIC_KEY or RELEASEGATE_JWKS_URL, or RELEASEGATE_LOCAL_MODE=true",
      );
    key = new TextEncoder().encode(loadOrCreateLocalSecret(dataDir).secret);
    algorithms = ["HS256"];
    mode = "local";
  }
  return {
    mode,
    async verify(token) {
      let payload: JWTPayload;
      try {
        // jose never accepts alg "none"; `algorithms` pins the expected family.
        // A token without `exp` would be valid forever: require it.
        ({ payload } = await jwtVerify(token, key as Uint8Array, { ...options, algorithms, requiredClaims: ["exp"] }));
      } catch (err) {
        throw new UnauthenticatedError(`invalid token (${describeJoseError(err)})`, { cause: err });
      }
      return callerFromClaims(payload, config.groupsClaim);
    },
  };
}

const CLAIM_PROBLEMS: Record<string, string> = {
  iss: "iss does not match the configured issuer",
  aud: "aud does not match the configured audience",
  nbf: "nbf is in the future",
};

/** A short reason for the caller; never the token's content. */
function describeJoseError(err: unknown): string {
  const { code, claim, reason } = err as { code?: string; claim?: string; reason?: string };
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return "expired";
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (reason === "missing") return `claim check failed: ${claim} is missing`;
      return `claim check failed: ${CLAIM_PROBLEMS[claim ?? ""] ?? `${claim} is invalid`}`;
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "bad signature";
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return "algorithm not allowed";
    default:
      return "malformed or unverifiable";
  }
}

export interface MintOptions {
  sub: string;
  username?: string;
  orgRoles: Record<string, OrgRole>;
  actorType?: ActorType;
  /** Identity-provider groups, written to the `groups` claim (or `groupsClaim`). */
  groups?: readonly string[];
  groupsClaim?: string;
  /** Lifetime, e.g. "1h", "30d"; default 12h. */
  expiresIn?: string;
  issuer?: string;
  audience?: string;
}

/** Mints an HS256 token (local mode, tests, CLI `token`). */
export async function mintToken(secret: string, o: MintOptions): Promise<string> {
  let jwt = new SignJWT({
    preferred_username: o.username ?? o.sub,
    org_roles: o.orgRoles,
    actor_type: o.actorType ?? "user",
    ...(o.groups === undefined ? {} : { [o.groupsClaim ?? DEFAULT_JWT_GROUPS_CLAIM]: [...o.groups] }),
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(o.sub)
    .setIssuedAt()
    .setExpirationTime(o.expiresIn ?? "12h");
  if (o.issuer !== undefined) jwt = jwt.setIssuer(o.issuer);
  if (o.audience !== undefined) jwt = jwt.setAudience(o.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
