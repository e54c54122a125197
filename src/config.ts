import { z } from "zod";

/** Default gRPC/Connect port. */
export const DEFAULT_PORT = 50051;
/** Default admin port for /healthz, /readyz, /metrics. */
export const DEFAULT_METRICS_PORT = 9464;
/** Default embedded database directory (also holds the local JWT secret). */
export const DEFAULT_DATA_DIR = "./.releasegate";
/** Default JetStream stream for structured approval events. */
export const DEFAULT_NATS_STREAM = "RELEASEGATE_APPROVALS";
/** Default JetStream subject prefix; events go to `<prefix>.<org>.<project>.<env>`. */
export const DEFAULT_NATS_SUBJECT_PREFIX = "releasegate.approvals";
/** Default maximum request message size: 1 MiB. */
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;
/** Default deadline applied to RPCs whose caller set none: 10 s. */
export const DEFAULT_RPC_TIMEOUT_MS = 10_000;
/** Default cap on unary RPCs handled at once; more get RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Default cap on open WatchApprovalEvents streams per replica; more get RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_WATCH_STREAMS = 1000;
/** Default keep-alive interval of a quiet WatchApprovalEvents stream: 15 s (under common proxy idle timeouts of 30–60 s). */
export const DEFAULT_WATCH_HEARTBEAT_MS = 15_000;
/** Default time in-flight RPCs get to finish on SIGTERM before they are cut: 10 s. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** Default token claim holding the caller's identity-provider groups (an array of strings). */
export const DEFAULT_JWT_GROUPS_CLAIM = "groups";
/** Default interval of the approval-request reaper (expires due requests on every replica): 1 s. */
export const DEFAULT_REAPER_INTERVAL_MS = 1_000;
/** Default pg pool size. */
export const DEFAULT_DB_POOL_SIZE = 10;

export interface JwtConfig {
  /** HS256 shared secret. */
  readonly secret?: string;
  /** PEM (SPKI) public key, with `algorithm`. */
  readonly publicKey?: string;
  readonly algorithm: string;
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /**
   * Token claim holding the caller's identity-provider groups
   * (RELEASEGATE_JWT_GROUPS_CLAIM; default `groups`). Undefined: `groups`.
   */
  readonly groupsClaim?: string;
  /**
   * With no key above: verify tokens with a secret created under DATA_DIR
   * (RELEASEGATE_LOCAL_MODE; default true without DATABASE_URL, false with it).
   * Undefined counts as false: no key and no local mode is refused.
   */
  readonly localMode?: boolean;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly metricsPort: number;
  readonly databaseUrl?: string;
  readonly dbPoolSize: number;
  /** Send hot parameterised statements as named prepared statements (src/db/auto-prepare.ts). */
  readonly dbAutoPrepare: boolean;
  readonly dataDir: string;
  readonly natsUrl?: string;
  readonly natsStream: string;
  readonly natsSubjectPrefix: string;
  readonly jwt: JwtConfig;
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  readonly maxRequestBytes: number;
  readonly rpcTimeoutMs: number;
  readonly maxInFlight: number;
  /** Open WatchApprovalEvents streams allowed per replica. */
  readonly maxWatchStreams: number;
  /** Keep-alive interval of a quiet Watch stream, in ms; 0: none. */
  readonly watchHeartbeatMs: number;
  readonly shutdownGraceMs: number;
  /** Interval of the approval-request reaper, in ms (RELEASEGATE_REAPER_INTERVAL_MS). */
  readonly reaperIntervalMs: number;
  readonly logLevel: string;
  /** Undefined: pretty on a TTY, JSON otherwise. */
  readonly logFormat?: "json" | "pretty";
}

const emptyToUndefined = (v: unknown) => (v === "" ? undefined : v);
const optionalString = z.preprocess(emptyToUndefined, z.string().optional());
const PORT_MESSAGE = "must be a port number from 0 to 65535";
const port = (fallback: number) =>
  z.preprocess(
    emptyToUndefined,
    z.coerce
      .number(PORT_MESSAGE)
      .int(PORT_MESSAGE)
      .min(0, PORT_MESSAGE)
      .max(65535, PORT_MESSAGE)
      .default(fallback),
  );
const POSITIVE_MESSAGE = "must be a positive integer";
const positiveInt = (fallback: number) =>
  z.preprocess(
    emptyToUndefined,
    z.coerce.number(POSITIVE_MESSAGE).int(POSITIVE_MESSAGE).positive(POSITIVE_MESSAGE).default(fallback),
  );

const NON_NEGATIVE_MESSAGE = "must be a non-negative integer";
const nonNegativeInt = (fallback: number) =>
  z.preprocess(
    emptyToUndefined,
    z.coerce.number(NON_NEGATIVE_MESSAGE).int(NON_NEGATIVE_MESSAGE).min(0, NON_NEGATIVE_MESSAGE).default(fallback),
  );

const EnvSchema = z.object({
  HOST: z.preprocess(emptyToUndefined, z.string().default("0.0.0.0")),
  PORT: port(DEFAULT_PORT),
  METRICS_PORT: port(DEFAULT_METRICS_PORT),
  DATABASE_URL: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  DB_POOL_SIZE: positiveInt(DEFAULT_DB_POOL_SIZE),
  // Off behind a pooler that cannot keep named statements per client (PgBouncer in transaction mode before 1.21).
  DB_AUTO_PREPARE: z.preprocess(emptyToUndefined, z.enum(["true", "false"]).default("true")),
  DATA_DIR: z.preprocess(emptyToUndefined, z.string().default(DEFAULT_DATA_DIR)),
  NATS_URL: optionalString,
  NATS_STREAM: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, "may hold only letters, digits, _ and -")
      .default(DEFAULT_NATS_STREAM),
  ),
  NATS_SUBJECT_PREFIX: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "must be dot-separated tokens without wildcards")
      .default(DEFAULT_NATS_SUBJECT_PREFIX),
  ),
  RELEASEGATE_JWT_SECRET: z.preprocess(
    emptyToUndefined,
    z.string().min(32, "must be at least 32 characters").optional(),
  ),
  RELEASEGATE_JWT_PUBLIC_KEY: z.preprocess(
    // A PEM in a one-line env file or secret often arrives with literal "\n".
    (v) => (typeof v === "string" && v !== "" ? v.replace(/\\n/g, "\n") : emptyToUndefined(v)),
    z
      .string()
      .regex(/-----BEGIN PUBLIC KEY-----/, "must be a PEM (SPKI) public key: -----BEGIN PUBLIC KEY-----...")
      .optional(),
  ),
  RELEASEGATE_JWT_ALGORITHM: z.preprocess(
    emptyToUndefined,
    z.enum(["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]).default("RS256"),
  ),
  RELEASEGATE_JWKS_URL: z.preprocess(emptyToUndefined, z.url({ abort: true }).check(jwksUrlCheck).optional()),
  RELEASEGATE_LOCAL_MODE: z.preprocess(emptyToUndefined, z.enum(["true", "false"]).optional()),
  RELEASEGATE_JWT_ISSUER: optionalString,
  RELEASEGATE_JWT_AUDIENCE: optionalString,
  RELEASEGATE_JWT_GROUPS_CLAIM: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_:./-]{1,128}$/, "must be a claim name: 1-128 letters, digits, '_', ':', '.', '/' or '-'")
      .default(DEFAULT_JWT_GROUPS_CLAIM),
  ),
  TLS_CERT_FILE: optionalString,
  TLS_KEY_FILE: optionalString,
  MAX_REQUEST_BYTES: positiveInt(DEFAULT_MAX_REQUEST_BYTES),
  RPC_TIMEOUT_MS: positiveInt(DEFAULT_RPC_TIMEOUT_MS),
  MAX_IN_FLIGHT: positiveInt(DEFAULT_MAX_IN_FLIGHT),
  MAX_WATCH_STREAMS: positiveInt(DEFAULT_MAX_WATCH_STREAMS),
  WATCH_HEARTBEAT_MS: nonNegativeInt(DEFAULT_WATCH_HEARTBEAT_MS),
  SHUTDOWN_GRACE_MS: positiveInt(DEFAULT_SHUTDOWN_GRACE_MS),
  RELEASEGATE_REAPER_INTERVAL_MS: positiveInt(DEFAULT_REAPER_INTERVAL_MS),
  LOG_FORMAT: z.preprocess(emptyToUndefined, z.enum(["json", "pretty"]).optional()),
  LOG_LEVEL: z.preprocess(
    emptyToUndefined,
    z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  ),
});

/**
 * Loopback hosts, where plain http cannot be read or altered on the network.
 * `hostname` as WHATWG URL gives it: IPv4 already normalised (`127.1` →
 * `127.0.0.1`), IPv6 in brackets.
 */
function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** Keys fetched over plain http could be swapped on the way: https, or http to this machine only. */
function jwksUrlCheck(ctx: z.core.ParsePayload<string>): void {
  const url = new URL(ctx.value);
  const message =
    url.protocol === "https:"
      ? undefined
      : url.protocol !== "http:"
        ? "must be an https:// URL"
        : isLoopbackHost(url.hostname)
          ? undefined
          : "must use https:// (plain http:// only to a loopback host: localhost, 127.0.0.0/8, ::1)";
  if (message !== undefined) ctx.issues.push({ code: "custom", message, input: ctx.value });
}

const JWT_KEY_VARIABLES = ["RELEASEGATE_JWT_SECRET", "RELEASEGATE_JWT_PUBLIC_KEY", "RELEASEGATE_JWKS_URL"] as const;

/** RELEASEGATE_LOCAL_MODE, else its default: on for the embedded database, off with DATABASE_URL. */
function localModeOf(env: NodeJS.ProcessEnv): boolean {
  const v = env.RELEASEGATE_LOCAL_MODE;
  if (v === "true" || v === "false") return v === "true";
  return env.DATABASE_URL === undefined || env.DATABASE_URL === "";
}

/**
 * Rules that span variables. Checked on the raw environment, separately from
 * the schema, so they are reported even when a single variable is also wrong.
 */
function crossFieldProblems(env: NodeJS.ProcessEnv, purpose: ConfigPurpose): string[] {
  const set = (name: string) => env[name] !== undefined && env[name] !== "";
  const problems: string[] = [];
  const keys = JWT_KEY_VARIABLES.filter(set);
  if (keys.length > 1) problems.push(`RELEASEGATE_JWT_SECRET: set only one of ${JWT_KEY_VARIABLES.join(", ")}`);
  // Fail closed: a server that would verify tokens with a secret it made up
  // itself must have been asked to (a laptop, the embedded database).
  if (purpose === "serve" && keys.length === 0 && !localModeOf(env))
    problems.push(
      `${JWT_KEY_VARIABLES.join(", ")}: none is set and local mode is off (${
        set("RELEASEGATE_LOCAL_MODE") ? "RELEASEGATE_LOCAL_MODE=false" : "DATABASE_URL is set"
      }): set one of them, or RELEASEGATE_LOCAL_MODE=true to sign tokens with a secret created in DATA_DIR`,
    );
  if (set("TLS_CERT_FILE") !== set("TLS_KEY_FILE"))
    problems.push("TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE must be set together");
  return problems;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** One line per problem, each naming its variable. */
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.problems = problems;
  }
}

/**
 * What the configuration is loaded for: `serve` (the default) also requires a
 * way to verify tokens; `migrate` (apply migrations and exit) verifies none.
 */
export type ConfigPurpose = "serve" | "migrate";

export interface LoadConfigOptions {
  /** Default `serve`. */
  readonly purpose?: ConfigPurpose;
}

/** Parses configuration from environment variables once; throws ConfigError. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  const parsed = EnvSchema.safeParse(env);
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".") || "environment"}: ${i.message}`)),
    ...crossFieldProblems(env, options.purpose ?? "serve"),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return Object.freeze({
    host: e.HOST,
    port: e.PORT,
    metricsPort: e.METRICS_PORT,
    databaseUrl: e.DATABASE_URL,
    dbPoolSize: e.DB_POOL_SIZE,
    dbAutoPrepare: e.DB_AUTO_PREPARE === "true",
    dataDir: e.DATA_DIR,
    natsUrl: e.NATS_URL,
    natsStream: e.NATS_STREAM,
    natsSubjectPrefix: e.NATS_SUBJECT_PREFIX,
    jwt: Object.freeze({
      secret: e.RELEASEGATE_JWT_SECRET,
      publicKey: e.RELEASEGATE_JWT_PUBLIC_KEY,
      algorithm: e.RELEASEGATE_JWT_ALGORITHM,
      jwksUrl: e.RELEASEGATE_JWKS_URL,
      issuer: e.RELEASEGATE_JWT_ISSUER,
      audience: e.RELEASEGATE_JWT_AUDIENCE,
      groupsClaim: e.RELEASEGATE_JWT_GROUPS_CLAIM,
      localMode: localModeOf(env),
    }),
    tlsCertFile: e.TLS_CERT_FILE,
    tlsKeyFile: e.TLS_KEY_FILE,
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    rpcTimeoutMs: e.RPC_TIMEOUT_MS,
    maxInFlight: e.MAX_IN_FLIGHT,
    maxWatchStreams: e.MAX_WATCH_STREAMS,
    watchHeartbeatMs: e.WATCH_HEARTBEAT_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    reaperIntervalMs: e.RELEASEGATE_REAPER_INTERVAL_MS,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
  });
}
