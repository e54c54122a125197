import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { accessKey, createAccess, type GrantLoader } from "../auth/access.js";
import { callerKey } from "../auth/caller.js";
import type { TokenVerifier } from "../auth/token-verifier.js";
import { type Clock, systemClock } from "../clock.js";
import { toConnectError, UnauthenticatedError } from "../errors.js";

/** Services that answer without a token (probes, grpcurl discovery). */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** Maps every error leaving a handler (unary or mid-stream) to a ConnectError, once. */
export function errorMappingInterceptor(onInternal?: (err: unknown, procedure: string) => void): Interceptor {
  const map = (err: unknown, procedure: string) => {
    const mapped = toConnectError(err);
    if (mapped.code === 13 /* Internal */) onInternal?.(err, procedure);
    return mapped;
  };
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const source = res.message;
      async function* guarded() {
        try {
          yield* source;
        } catch (err) {
          throw map(err, req.url);
        }
      }
      return { ...res, message: guarded() } as StreamResponse;
    } catch (err) {
      throw map(err, req.url);
    }
  };
}

/** How the auth interceptor reads role grants; without one, callers have their token roles only. */
export interface AuthDirectory {
  readonly loadGrants?: GrantLoader;
  readonly clock?: Clock;
}

/**
 * Verifies `authorization: Bearer <JWT>` and puts the caller, and its
 * per-request Access (grants read lazily, once), in the context values.
 */
export function authInterceptor(verifier: TokenVerifier, directory: AuthDirectory = {}): Interceptor {
  const clock = directory.clock ?? systemClock;
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const header = req.header.get("authorization");
    if (header === null || header === "") throw new UnauthenticatedError("missing authorization header (Bearer token)");
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (match === null) throw new UnauthenticatedError("authorization header must be 'Bearer <token>'");
    const caller = await verifier.verify(match[1]!);
    req.contextValues.set(callerKey, caller);
    req.contextValues.set(accessKey, createAccess(caller, { loadGrants: directory.loadGrants, clock }));
    return next(req);
  };
}
