import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_PUBLIC_URL, loadConfig } from "../../src/config.js";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig: webhooks", () => {
  it("defaults to https-only public destinations, 5 s attempts and 15 attempts", () => {
    const c = loadConfig({});
    expect(c.publicUrl).toBe(DEFAULT_PUBLIC_URL);
    expect(c.webhooks).toEqual({
      allowPrivateNetworks: false,
      timeoutMs: 5_000,
      maxAttempts: 15,
      backoffBaseMs: 1_000,
      backoffMaxMs: 1_800_000,
      concurrency: 16,
    });
  });

  it("reads every setting", () => {
    const c = loadConfig({
      RELEASEGATE_PUBLIC_URL: "https://releasegate.example.com",
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
      WEBHOOK_TIMEOUT_MS: "300",
      WEBHOOK_MAX_ATTEMPTS: "2",
      WEBHOOK_BACKOFF_BASE_MS: "10",
      WEBHOOK_BACKOFF_MAX_MS: "50",
      WEBHOOK_CONCURRENCY: "4",
    });
    expect(c.publicUrl).toBe("https://releasegate.example.com");
    expect(c.webhooks).toEqual({ allowPrivateNetworks: true, timeoutMs: 300, maxAttempts: 2, backoffBaseMs: 10, backoffMaxMs: 50, concurrency: 4 });
  });

  it("names each bad setting", () => {
    expect(
      problemsOf({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: "yes", WEBHOOK_TIMEOUT_MS: "0", WEBHOOK_MAX_ATTEMPTS: "x", RELEASEGATE_PUBLIC_URL: "ftp://x" }),
    ).toEqual([
      expect.stringMatching(/^RELEASEGATE_PUBLIC_URL: must be an http:\/\/ or https:\/\/ URL$/),
      expect.stringMatching(/^WEBHOOK_ALLOW_PRIVATE_NETWORKS: /),
      "WEBHOOK_TIMEOUT_MS: must be a positive integer",
      "WEBHOOK_MAX_ATTEMPTS: must be a positive integer",
    ]);
  });
});
