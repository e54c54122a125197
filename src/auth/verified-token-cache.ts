import { decodeJwt } from "jose";
import type { Caller } from "./caller.js";
import type { TokenVerifier } from "./token-verifier.js";

/** Default number of verified tokens remembered (least recently verified evicted first). */
export const DEFAULT_VERIFIED_TOKENS_MAX = 10_000;
/**
 * Default reuse of one verification, in milliseconds. Bounds how long a key
 * rotated out of a JWKS still admits tokens it signed; a token is never
 * reused past its own `exp`.
 */
export const DEFAULT_VERIFIED_TOKEN_TTL_MS = 60_000;

export interface VerifiedTokenCacheOptions {
  /** Default DEFAULT_VERIFIED_TOKENS_MAX. */
  readonly maxEntries?: number;
  /** Default DEFAULT_VERIFIED_TOKEN_TTL_MS. */
  readonly ttlMs?: number;
  /** Wall-clock milliseconds (JWT `exp` is wall-clock); default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Remembers successful verifications by the exact token string, so a
 * pipeline that calls with one token pays for the signature check once a
 * minute instead of on every call. Failures are never cached; the same bytes
 * with the same key verify the same way, so only time (`exp`, key rotation)
 * can change the answer, and both bound an entry's life.
 */
export function cacheVerifiedTokens(inner: TokenVerifier, options: VerifiedTokenCacheOptions = {}): TokenVerifier {
  const maxEntries = options.maxEntries ?? DEFAULT_VERIFIED_TOKENS_MAX;
  const ttlMs = options.ttlMs ?? DEFAULT_VERIFIED_TOKEN_TTL_MS;
  const now = options.now ?? Date.now;
  const verified = new Map<string, { caller: Caller; until: number }>();
  return {
    mode: inner.mode,
    async verify(token) {
      const at = now();
      const hit = verified.get(token);
      if (hit !== undefined && at < hit.until) return hit.caller;
      verified.delete(token);
      const caller = await inner.verify(token);
      // Verified just now, so the payload decodes; exp is in seconds.
      const { exp } = decodeJwt(token);
      const until = Math.min(at + ttlMs, typeof exp === "number" ? exp * 1000 : Number.POSITIVE_INFINITY);
      if (verified.size >= maxEntries) verified.delete(verified.keys().next().value as string);
      verified.set(token, { caller, until });
      return caller;
    },
  };
}
