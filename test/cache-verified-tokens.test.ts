import { describe, expect, it } from "vitest";
import type { Caller } from "../src/auth/caller.js";
import { createTokenVerifier, mintToken, type TokenVerifier } from "../src/auth/token-verifier.js";
import { cacheVerifiedTokens } from "../src/auth/verified-token-cache.js";
import { UnauthenticatedError } from "../src/errors.js";

const SECRET = "cache-test-secret-that-is-at-least-32-chars";

/** The real HS256 verifier, counting calls. */
async function countingVerifier(): Promise<{ verifier: TokenVerifier; calls: () => number }> {
  const real = await createTokenVerifier({ secret: SECRET, algorithm: "RS256" }, "/nonexistent");
  let calls = 0;
  return {
    verifier: {
      mode: real.mode,
      verify(token: string): Promise<Caller> {
        calls++;
        return real.verify(token);
      },
    },
    calls: () => calls,
  };
}

const mint = (expiresIn = "1h", sub = "ada") => mintToken(SECRET, { sub, orgRoles: { acme: "admin" }, expiresIn });

describe("verified-token cache", () => {
  it("verifies a token once and answers repeats from memory", async () => {
    const { verifier, calls } = await countingVerifier();
    const cached = cacheVerifiedTokens(verifier);
    const token = await mint();
    const first = await cached.verify(token);
    const second = await cached.verify(token);
    expect(second).toBe(first);
    expect(first.userId).toBe("ada");
    expect(calls()).toBe(1);
  });

  it("never caches a failure: a bad signature is rejected every time", async () => {
    const { verifier, calls } = await countingVerifier();
    const cached = cacheVerifiedTokens(verifier);
    const forged = `${(await mint()).slice(0, -4)}AAAA`;
    for (let i = 0; i < 2; i++) {
      const err = await cached.verify(forged).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnauthenticatedError);
      expect((err as Error).message).toBe("invalid token (bad signature)");
    }
    expect(calls()).toBe(2);
  });

  it("re-verifies after ttlMs", async () => {
    let clock = Date.now();
    const { verifier, calls } = await countingVerifier();
    const cached = cacheVerifiedTokens(verifier, { ttlMs: 1_000, now: () => clock });
    const token = await mint();
    await cached.verify(token);
    clock += 999;
    await cached.verify(token);
    expect(calls()).toBe(1);
    clock += 1;
    await cached.verify(token);
    expect(calls()).toBe(2);
  });

  it("stops reusing a token at its own exp, even within ttlMs", async () => {
    const token = await mint("30s");
    const { exp } = JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()) as { exp: number };
    let clock = Date.now();
    const { verifier, calls } = await countingVerifier();
    const cached = cacheVerifiedTokens(verifier, { ttlMs: 3_600_000, now: () => clock });
    await cached.verify(token);
    clock = exp * 1000 - 1;
    await cached.verify(token);
    expect(calls()).toBe(1);
    clock = exp * 1000; // expired in the cache's eyes: the real verifier decides again
    await cached.verify(token);
    expect(calls()).toBe(2);
  });

  it("keeps at most maxEntries tokens, evicting the oldest", async () => {
    const { verifier, calls } = await countingVerifier();
    const cached = cacheVerifiedTokens(verifier, { maxEntries: 2 });
    const [a, b, c] = await Promise.all([mint("1h", "a"), mint("1h", "b"), mint("1h", "c")]);
    for (const t of [a, b, c, b, c, a] as string[]) await cached.verify(t);
    expect(calls()).toBe(4); // a, b, c, then a again after its eviction
  });
});
