import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { PUBLIC_SERVICES } from "./interceptors.js";

/**
 * Sheds load instead of queueing without bound: while `maxInFlight` unary
 * RPCs are being handled, the next one fails fast with RESOURCE_EXHAUSTED
 * (clients retry with backoff). Health and reflection are never shed, so
 * probes keep answering; long-lived streams (Watch) are not counted.
 */
export function concurrencyLimitInterceptor(maxInFlight: number, onShed?: () => void): Interceptor {
  let inFlight = 0;
  return (next) => async (req) => {
    if (req.stream || PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    if (inFlight >= maxInFlight) {
      onShed?.();
      throw new ConnectError(
        `server overloaded: ${inFlight} RPCs in flight (MAX_IN_FLIGHT=${maxInFlight}); retry with backoff`,
        Code.ResourceExhausted,
      );
    }
    inFlight++;
    try {
      return await next(req);
    } finally {
      inFlight--;
    }
  };
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeHandler<Res> = (req: NodeRequest, res: Res) => void;

/**
 * Gives every RPC whose caller set no deadline the default one, by adding the
 * protocol's own timeout header before connect-node reads the request
 * (`grpc-timeout` for gRPC and gRPC-Web, `connect-timeout-ms` for Connect).
 * connect then aborts the handler's `ctx.signal` and answers
 * DEADLINE_EXCEEDED when it passes, exactly as for a caller's deadline.
 * Streams (Watch, health, reflection) are left alone: they are meant to stay open.
 */
export function withDefaultDeadline<Res>(
  handler: NodeHandler<Res>,
  timeoutMs: number,
  services: readonly DescService[],
): NodeHandler<Res> {
  const unary = new Set(
    services.flatMap((s) => s.methods.filter((m) => m.methodKind === "unary").map((m) => `/${s.typeName}/${m.name}`)),
  );
  const grpcTimeout = timeoutMs <= 99_999_999 ? `${timeoutMs}m` : `${Math.ceil(timeoutMs / 1000)}S`;
  return (req, res) => {
    const headers = req.headers;
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (unary.has(path)) {
      const contentType = String(headers["content-type"] ?? "");
      if (contentType.startsWith("application/grpc")) {
        if (headers["grpc-timeout"] === undefined) headers["grpc-timeout"] = grpcTimeout;
      } else if (headers["connect-timeout-ms"] === undefined) {
        headers["connect-timeout-ms"] = String(timeoutMs);
      }
    }
    handler(req, res);
  };
}
