import { describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULT_DATA_DIR,
  DEFAULT_MAX_REQUEST_BYTES,
  DEFAULT_PORT,
  DEFAULT_RPC_TIMEOUT_MS,
  loadConfig,
} from "../../src/config.js";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies the documented defaults to an empty environment", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: "0.0.0.0",
      port: DEFAULT_PORT,
      dataDir: DEFAULT_DATA_DIR,
      databaseUrl: undefined,
      natsUrl: undefined,
      maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES,
      rpcTimeoutMs: DEFAULT_RPC_TIMEOUT_MS,
      logLevel: "info",
      jwt: { secret: undefined, publicKey: undefined, jwksUrl: undefined, algorithm: "RS256", localMode: true },
    });
    expect(DEFAULT_PORT).toBe(50051);
  });

  it("treats empty variables as unset", () => {
    const c = loadConfig({ PORT: "", DATABASE_URL: "", RELEASEGATE_JWT_SECRET: "" });
    expect(c.port).toBe(DEFAULT_PORT);
    expect(c.databaseUrl).toBeUndefined();
    expect(c.jwt.secret).toBeUndefined();
  });

  it("turns auto-prepare on unless DB_AUTO_PREPARE=false, and rejects anything but true/false", () => {
    expect(loadConfig({}).dbAutoPrepare).toBe(true);
    expect(loadConfig({ DB_AUTO_PREPARE: "false" }).dbAutoPrepare).toBe(false);
    expect(problemsOf({ DB_AUTO_PREPARE: "no" })).toEqual([expect.stringMatching(/^DB_AUTO_PREPARE: /)]);
  });

  it("reads the Watch limits: heartbeat interval (0 = off) and stream cap", () => {
    expect(loadConfig({})).toMatchObject({ watchHeartbeatMs: 15_000, maxWatchStreams: 1000 });
    expect(loadConfig({ WATCH_HEARTBEAT_MS: "0", MAX_WATCH_STREAMS: "5" })).toMatchObject({ watchHeartbeatMs: 0, maxWatchStreams: 5 });
    expect(problemsOf({ WATCH_HEARTBEAT_MS: "-1", MAX_WATCH_STREAMS: "0" })).toEqual([
      "MAX_WATCH_STREAMS: must be a positive integer",
      "WATCH_HEARTBEAT_MS: must be a non-negative integer",
    ]);
  });

  it("returns a frozen config", () => {
    const c = loadConfig({ PORT: "8080", DATABASE_URL: "postgres://u@h/db", RELEASEGATE_JWT_SECRET: "x".repeat(32) });
    expect(c.port).toBe(8080);
    expect(c.databaseUrl).toBe("postgres://u@h/db");
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.jwt)).toBe(true);
  });

  it("reports every problem on its own line naming the variable", () => {
    const problems = problemsOf({
      PORT: "abc",
      DATABASE_URL: "mysql://x/y",
      DB_POOL_SIZE: "0",
      LOG_LEVEL: "loud",
      RELEASEGATE_JWKS_URL: "not a url",
      NATS_SUBJECT_PREFIX: "a.>",
      MAX_REQUEST_BYTES: "1.5",
    });
    expect(problems).toEqual([
      "PORT: must be a port number from 0 to 65535",
      "DATABASE_URL: must be a postgres:// or postgresql:// URL",
      "DB_POOL_SIZE: must be a positive integer",
      "NATS_SUBJECT_PREFIX: must be dot-separated tokens without wildcards",
      "RELEASEGATE_JWKS_URL: Invalid URL",
      "MAX_REQUEST_BYTES: must be a positive integer",
      expect.stringMatching(/^LOG_LEVEL: Invalid option/),
    ]);
    for (const p of problems) expect(p).not.toContain("\n");
  });

  it("rejects an out-of-range port", () => {
    expect(problemsOf({ PORT: "70000" })).toEqual(["PORT: must be a port number from 0 to 65535"]);
  });

  it("rejects a short HS256 secret", () => {
    expect(problemsOf({ RELEASEGATE_JWT_SECRET: "short" })).toEqual([
      "RELEASEGATE_JWT_SECRET: must be at least 32 characters",
    ]);
  });

  it("rejects a public key that is not PEM", () => {
    expect(problemsOf({ RELEASEGATE_JWT_PUBLIC_KEY: "abc" })).toEqual([
      expect.stringMatching(/^RELEASEGATE_JWT_PUBLIC_KEY: must be a PEM \(SPKI\) public key/),
    ]);
  });

  it("turns literal \\n in a one-line public key into newlines", () => {
    const pem = "-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----\\n";
    expect(loadConfig({ RELEASEGATE_JWT_PUBLIC_KEY: pem }).jwt.publicKey).toBe(
      "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
    );
  });

  it("rejects two JWT key sources even when another variable is also wrong", () => {
    expect(
      problemsOf({ PORT: "-1", RELEASEGATE_JWT_SECRET: "x".repeat(32), RELEASEGATE_JWKS_URL: "https://idp/jwks" }),
    ).toEqual([
      "PORT: must be a port number from 0 to 65535",
      "RELEASEGATE_JWT_SECRET: set only one of RELEASEGATE_JWT_SECRET, RELEASEGATE_JWT_PUBLIC_KEY, RELEASEGATE_JWKS_URL",
    ]);
  });

  it("rejects a TLS certificate without a key", () => {
    expect(problemsOf({ TLS_CERT_FILE: "cert.pem" })).toEqual([
      "TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE must be set together",
    ]);
  });

  it("ConfigError's message lists the problems one per line", () => {
    try {
      loadConfig({ PORT: "x", DB_POOL_SIZE: "y" });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toBe(
        "invalid configuration:\n  PORT: must be a port number from 0 to 65535\n  DB_POOL_SIZE: must be a positive integer",
      );
    }
  });

  describe("fails closed without a JWT key", () => {
    const SECRET = "x".repeat(32);
    const PG = "postgres://u@h/db";
    const refused = (reason: string) =>
      `RELEASEGATE_JWT_SECRET, RELEASEGATE_JWT_PUBLIC_KEY, RELEASEGATE_JWKS_URL: none is set and local mode is off (${reason}): set one of them, or RELEASEGATE_LOCAL_MODE=true to sign tokens with a secret created in DATA_DIR`;

    it("refuses DATABASE_URL without a key, in one line naming the three variables and the opt-in", () => {
      expect(problemsOf({ DATABASE_URL: PG })).toEqual([refused("DATABASE_URL is set")]);
    });

    it("refuses no key with RELEASEGATE_LOCAL_MODE=false, also for the embedded database", () => {
      expect(problemsOf({ RELEASEGATE_LOCAL_MODE: "false" })).toEqual([refused("RELEASEGATE_LOCAL_MODE=false")]);
      expect(problemsOf({ DATABASE_URL: PG, RELEASEGATE_LOCAL_MODE: "false" })).toEqual([
        refused("RELEASEGATE_LOCAL_MODE=false"),
      ]);
    });

    it("keeps local mode by default for the embedded database", () => {
      expect(loadConfig({}).jwt.localMode).toBe(true);
      expect(loadConfig({ RELEASEGATE_LOCAL_MODE: "true" }).jwt.localMode).toBe(true);
    });

    it("starts on Postgres without a key only with RELEASEGATE_LOCAL_MODE=true", () => {
      const c = loadConfig({ DATABASE_URL: PG, RELEASEGATE_LOCAL_MODE: "true" });
      expect(c.jwt).toMatchObject({ localMode: true, secret: undefined, publicKey: undefined, jwksUrl: undefined });
    });

    it("accepts DATABASE_URL with any one of the three keys; local mode is then off by default", () => {
      const pem = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n";
      for (const key of [
        { RELEASEGATE_JWT_SECRET: SECRET },
        { RELEASEGATE_JWT_PUBLIC_KEY: pem },
        { RELEASEGATE_JWKS_URL: "https://idp.example/jwks" },
      ])
        expect(loadConfig({ DATABASE_URL: PG, ...key }).jwt.localMode).toBe(false);
    });

    it("treats an empty RELEASEGATE_LOCAL_MODE as unset and rejects anything but true/false", () => {
      expect(problemsOf({ DATABASE_URL: PG, RELEASEGATE_LOCAL_MODE: "" })).toEqual([refused("DATABASE_URL is set")]);
      expect(problemsOf({ RELEASEGATE_LOCAL_MODE: "yes", RELEASEGATE_JWT_SECRET: SECRET })).toEqual([
        expect.stringMatching(/^RELEASEGATE_LOCAL_MODE: Invalid option/),
      ]);
    });

    it("does not ask for a key when loading for migrations", () => {
      expect(loadConfig({ DATABASE_URL: PG }, { purpose: "migrate" }).databaseUrl).toBe(PG);
    });

    it("reports the missing key next to other problems", () => {
      expect(problemsOf({ DATABASE_URL: PG, PORT: "x" })).toEqual([
        "PORT: must be a port number from 0 to 65535",
        refused("DATABASE_URL is set"),
      ]);
    });
  });

  describe("RELEASEGATE_JWKS_URL", () => {
    const PLAIN = "RELEASEGATE_JWKS_URL: must use https:// (plain http:// only to a loopback host: localhost, 127.0.0.0/8, ::1)";

    it("accepts https anywhere", () => {
      expect(loadConfig({ RELEASEGATE_JWKS_URL: "https://idp.example/.well-known/jwks.json" }).jwt.jwksUrl).toBe(
        "https://idp.example/.well-known/jwks.json",
      );
    });

    it("accepts plain http to loopback hosts: localhost, 127.0.0.0/8, ::1", () => {
      for (const url of [
        "http://localhost:8080/jwks",
        "http://LOCALHOST/jwks",
        "http://127.0.0.1:8080/jwks",
        "http://127.10.20.30/jwks",
        "http://127.1/jwks",
        "http://[::1]:8080/jwks",
      ])
        expect(loadConfig({ RELEASEGATE_JWKS_URL: url }).jwt.jwksUrl, url).toBe(url);
    });

    it("refuses plain http to any other host, look-alikes of loopback included", () => {
      for (const url of [
        "http://idp.example/jwks",
        "http://10.0.0.1/jwks",
        "http://128.0.0.1/jwks",
        "http://127.0.0.1.idp.example/jwks",
        "http://localhost.idp.example/jwks",
        "http://[::ffff:127.0.0.1]/jwks",
        "http://0.0.0.0/jwks",
      ])
        expect(problemsOf({ RELEASEGATE_JWKS_URL: url }), url).toEqual([PLAIN]);
    });

    it("refuses other schemes", () => {
      expect(problemsOf({ RELEASEGATE_JWKS_URL: "ftp://idp.example/jwks" })).toEqual([
        "RELEASEGATE_JWKS_URL: must be an https:// URL",
      ]);
    });
  });
});
