import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { callerKey } from "../auth/caller.js";
import type { TokenVerifier } from "../auth/token-verifier.js";
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

/** Verifies `authorization: Bearer <JWT>` and puts the caller in the context values. */
export function authInterceptor(verifier: TokenVerifier): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const header = req.header.get("authorization");
    if (header === null || header === "") throw new UnauthenticatedError("missing authorization header (Bearer token)");
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (match === null) throw new UnauthenticatedError("authorization header must be 'Bearer <token>'");
    req.contextValues.set(callerKey, await verifier.verify(match[1]!));
    return next(req);
  };
}
