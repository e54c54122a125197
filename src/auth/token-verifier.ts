import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  createRemoteJWKSet,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  SignJWT,
} from "jose";
import type { JwtConfig } from "../config.js";
import { UnauthenticatedError } from "../errors.js";
import type { ActorType, Caller, OrgRole } from "./caller.js";

/** File under DATA_DIR holding the local-mode HS256 secret. */
export const LOCAL_SECRET_FILE = "jwt-secret";

export interface TokenVerifier {
  verify(token: string): Promise<Caller>;
  /** "hs256" | "public-key" | "jwks" | "local" */
  readonly mode: string;
}

/** Reads the local secret under dataDir, creating it on first start. */
export function loadOrCreateLocalSecret(dataDir: string): { secret: string; created: boolean } {
  const path = join(dataDir, LOCAL_SECRET_FILE);
  try {
    return { secret: readFileSync(path, "utf8").trim(), created: false };
  } catch {
    mkdirSync(dataDir, { recursive: true });
    const secret = randomBytes(32).toString("base64url");
    try {
      // wx: never overwrite a secret another process just wrote.
      writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
      return { secret, created: true };
    } catch {
      return { secret: readFileSync(path, "utf8").trim(), created: false };
    }
  }
}

/** Maps verified claims to a Caller; rejects tokens without the claims we need. */
export function callerFromClaims(claims: JWTPayload): Caller {
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
  for (const [org, role] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (role === "admin" || role === "member") orgRoles.set(org, role);
  }
  return { userId: claims.sub, username, actorType, orgRoles };
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
        ({ payload } = await jwtVerify(token, key as Uint8Array, { ...options, algorithms }));
      } catch (err) {
        const code = (err as { code?: string }).code ?? "ERR_JWT_INVALID";
        throw new UnauthenticatedError(`invalid token (${describeJoseError(code)})`, { cause: err });
      }
      return callerFromClaims(payload);
    },
  };
}

function describeJoseError(code: string): string {
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return "expired";
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      return "claim check failed: issuer, audience or not-before";
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
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(o.sub)
    .setIssuedAt()
    .setExpirationTime(o.expiresIn ?? "12h");
  if (o.issuer !== undefined) jwt = jwt.setIssuer(o.issuer);
  if (o.audience !== undefined) jwt = jwt.setAudience(o.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
