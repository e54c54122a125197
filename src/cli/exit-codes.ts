import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigError } from "../config.js";

/** Exit codes: scripts and pipelines branch on these (docs/cli.md lists them). */
export const EXIT = {
  ok: 0,
  /** EvaluatePolicies did not pass (a policy blocks the release). */
  blocked: 1,
  /** Bad command line or configuration. */
  usage: 2,
  /** The server answered an error (code and message on stderr); PERMISSION_DENIED too. */
  rpc: 3,
  /** No token to send, or the server refused it (UNAUTHENTICATED). */
  auth: 4,
  /** The server could not be reached: connection refused, unknown host, timeout. */
  unreachable: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI explains itself: the message says what to do next. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** Node's error codes for a server that cannot be reached (connect-node keeps them in `cause`). */
const UNREACHABLE_CAUSES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
]);

function causeCodes(err: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/**
 * True when the error comes from the transport, not from an answer: a Node
 * socket error in the cause chain, or Unavailable / DeadlineExceeded without
 * any response header (a server that answers always sends some).
 */
export function isTransportFailure(err: ConnectError): boolean {
  if (causeCodes(err).some((c) => UNREACHABLE_CAUSES.has(c))) return true;
  const answered = [...err.metadata.keys()].length > 0;
  return !answered && (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded);
}

/** `PermissionDenied` → `PERMISSION_DENIED`, as the server's logs and docs write codes. */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** What to type to sign in to `server`. */
export function loginHint(server: string): string {
  return `run \`releasegate login --server ${server}\` (or set RELEASEGATE_TOKEN)`;
}

export interface Failure {
  readonly exitCode: ExitCode;
  /** Lines for stderr, the first `error: …`. */
  readonly lines: readonly string[];
}

/**
 * The one mapping from an error to an exit code and what to tell the user.
 * `server` is the address the command talked to (for the hints).
 */
export function failureOf(err: unknown, server?: string): Failure {
  if (err instanceof CliError) return { exitCode: err.exitCode, lines: [`error: ${err.message}`] };
  if (err instanceof ConfigError) return { exitCode: EXIT.usage, lines: err.problems.map((p) => `config error: ${p}`) };
  if (err instanceof ConnectError) {
    const at = server ?? "the server";
    if (isTransportFailure(err)) {
      const cause = causeCodes(err).find((c) => UNREACHABLE_CAUSES.has(c));
      const why = cause ?? (err.code === Code.DeadlineExceeded ? "timed out" : err.rawMessage);
      return {
        exitCode: EXIT.unreachable,
        lines: [
          `error: server unreachable at ${at} (${why}): is it running? (\`npm start\`); check --server / RELEASEGATE_SERVER`,
        ],
      };
    }
    if (err.code === Code.Unauthenticated)
      return {
        exitCode: EXIT.auth,
        lines: [
          `error: UNAUTHENTICATED: ${err.rawMessage}`,
          `the server at ${at} refused the token: ${loginHint(at)}`,
        ],
      };
    return { exitCode: EXIT.rpc, lines: [`error: ${codeName(err.code)}: ${err.rawMessage}`] };
  }
  return { exitCode: EXIT.rpc, lines: [`error: ${err instanceof Error ? err.message : String(err)}`] };
}

/** Prints the failure on stderr and sets the exit code (the process ends when its work is done). */
export function reportFailure(err: unknown, server?: string): void {
  const failure = failureOf(err, server);
  process.stderr.write(failure.lines.map((l) => `${l}\n`).join(""));
  process.exitCode = failure.exitCode;
}
