import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Domain errors. Handlers and rules throw these; `toConnectError` is the one
 * place that turns them (and driver errors) into gRPC codes.
 */
export class InvalidArgumentError extends Error {
  override readonly name = "InvalidArgumentError";
  /** The request field at fault, e.g. `soak_time.duration_seconds`. */
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`${field}: ${message}`, options);
    this.field = field;
  }
}

export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
}

export class AlreadyExistsError extends Error {
  override readonly name = "AlreadyExistsError";
}

export class PermissionDeniedError extends Error {
  override readonly name = "PermissionDeniedError";
}

export class UnauthenticatedError extends Error {
  override readonly name = "UnauthenticatedError";
}

/**
 * The request is well formed but the system is not in a state that allows
 * it (e.g. it names an environment the project has not declared); the
 * message says what to change first. `field` is the request field at fault.
 */
export class FailedPreconditionError extends Error {
  override readonly name = "FailedPreconditionError";
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`${field}: ${message}`, options);
    this.field = field;
  }
}

/** Longest part of a rejected value repeated in an error message (messages travel in headers). */
const QUOTED_MAX = 80;

/**
 * A rejected request value for an error message: a JSON string with
 * everything outside printable ASCII written as \uXXXX (a trailing space
 * shows inside the quotes, a zero-width space or a Cyrillic o (U+043E) shows
 * as what it is), cut to 80 characters, so an error never echoes a megabyte
 * of input into a gRPC trailer.
 */
export function quoteInput(value: string): string {
  const shown = value.length > QUOTED_MAX ? value.slice(0, QUOTED_MAX) : value;
  const json = JSON.stringify(shown).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return value.length > QUOTED_MAX ? `${json}... (${value.length} characters)` : json;
}

/** A position the request names (a resume point) is outside what the server keeps. */
export class OutOfRangeError extends Error {
  override readonly name = "OutOfRangeError";
}

// Node/pg error codes for a database we cannot reach right now.
const UNAVAILABLE_NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
]);

/** SQLSTATE classes/codes that mean "try again", not "bug". */
function isTransientSqlState(code: string): boolean {
  return (
    code.startsWith("08") || // connection exception
    code === "57P01" || // admin_shutdown
    code === "57P02" || // crash_shutdown
    code === "57P03" || // cannot_connect_now
    code === "53300" || // too_many_connections
    code === "40001" || // serialization_failure
    code === "40P01" // deadlock_detected
  );
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/**
 * feature_not_supported "cached plan must not change result type": a named
 * prepared statement outlived a schema change (src/db/auto-prepare.ts
 * discards that connection, so a retry gets a fresh one).
 */
function isStalePlan(err: unknown): boolean {
  return errorCode(err) === "0A000" && err instanceof Error && /cached plan must not change result type/.test(err.message);
}

/** True when `err` is a database error worth retrying the transaction for. */
export function isRetryableDbError(err: unknown): boolean {
  const code = errorCode(err);
  return code === "40001" || code === "40P01" || isStalePlan(err);
}

/**
 * Maps any thrown value to a ConnectError. Messages of unexpected errors are
 * never forwarded (they may hold SQL); the original is kept in `cause`.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidArgumentError)
    return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  if (err instanceof NotFoundError)
    return new ConnectError(err.message, Code.NotFound, undefined, undefined, err);
  if (err instanceof AlreadyExistsError)
    return new ConnectError(err.message, Code.AlreadyExists, undefined, undefined, err);
  if (err instanceof PermissionDeniedError)
    return new ConnectError(err.message, Code.PermissionDenied, undefined, undefined, err);
  if (err instanceof UnauthenticatedError)
    return new ConnectError(err.message, Code.Unauthenticated, undefined, undefined, err);
  if (err instanceof FailedPreconditionError)
    return new ConnectError(err.message, Code.FailedPrecondition, undefined, undefined, err);
  if (err instanceof OutOfRangeError)
    return new ConnectError(err.message, Code.OutOfRange, undefined, undefined, err);
  const code = errorCode(err);
  if (code === "23505")
    return new ConnectError("already exists", Code.AlreadyExists, undefined, undefined, err);
  if (code?.startsWith("22"))
    // data_exception (NUL in text, bad encoding, out of range): the input, not us.
    return new ConnectError("invalid value in request", Code.InvalidArgument, undefined, undefined, err);
  if (code === "57014")
    // query_canceled: our own deadline/abort reached the database
    return new ConnectError("deadline exceeded", Code.DeadlineExceeded, undefined, undefined, err);
  if (code !== undefined && (UNAVAILABLE_NET_CODES.has(code) || isTransientSqlState(code) || isStalePlan(err)))
    return new ConnectError(
      "database unavailable, retry later",
      Code.Unavailable,
      undefined,
      undefined,
      err,
    );
  if (err instanceof Error && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(err.message))
    return new ConnectError(
      "database unavailable, retry later",
      Code.Unavailable,
      undefined,
      undefined,
      err,
    );
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}
