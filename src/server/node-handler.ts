import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeFromString, codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import {
  type ConnectNodeAdapterOptions,
  compressionBrotli,
  compressionGzip,
  connectNodeAdapter,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Statuses connect-es answers before any handler or interceptor runs, so
 * toConnectError never sees them, that we answer differently. connect-es
 * reports request bytes it cannot decode (not protobuf, or a compressed
 * envelope without grpc-encoding) as INTERNAL, like grpc-go; they are the
 * caller's fault, so INTERNAL keeps meaning "our bug" in alerts. connect-node
 * has no hook for this (its serialization throws Code.Internal itself), so
 * the rewrite happens on the response, one row per case.
 */
export const STATUS_REWRITES: readonly { readonly from: Code; readonly messagePrefix: string; readonly to: Code }[] = [
  { from: Code.Internal, messagePrefix: "parse binary", to: Code.InvalidArgument },
  { from: Code.Internal, messagePrefix: "received compressed envelope", to: Code.InvalidArgument },
];

/** The code to answer instead of `code` with `message`, or undefined to leave it. */
function rewrite(code: Code, message: string): Code | undefined {
  for (const r of STATUS_REWRITES) if (r.from === code && message.startsWith(r.messagePrefix)) return r.to;
  return undefined;
}

/**
 * `connectNodeAdapter` with one difference: the statuses in STATUS_REWRITES
 * are rewritten (gRPC trailers, gRPC-Web trailer frames, Connect unary error
 * bodies and end-stream frames).
 */
export function createNodeHandler(
  options: ConnectNodeAdapterOptions,
  onHandlerError?: (reason: unknown) => void,
): (req: NodeRequest, res: NodeResponse) => void {
  // Same default as connectNodeAdapter: accept gzip and brotli request bodies.
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  // Unknown paths: whatever connectNodeAdapter answers (404).
  const fallback = connectNodeAdapter({ routes: () => undefined });
  return (req, res) => {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (handler === undefined) return fallback(req, res);
    handler(universalRequestFromNodeRequest(req, res, undefined, undefined))
      .then(async (uRes) => universalResponseToNodeResponse(await withRewrittenStatus(uRes), res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code !== Code.Aborted) onHandlerError?.(reason);
      });
  };
}

async function withRewrittenStatus(uRes: UniversalServerResponse): Promise<UniversalServerResponse> {
  const body = uRes.body;
  if (body === undefined || !(Symbol.asyncIterator in body)) return uRes;
  // gRPC: the status lands in the trailer once the body is done.
  if (uRes.trailer !== undefined) {
    const trailer = uRes.trailer;
    return {
      ...uRes,
      body: (async function* () {
        yield* body;
        const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
        const to = rewrite(Number(trailer.get("grpc-status")) as Code, message);
        if (to !== undefined) trailer.set("grpc-status", String(to));
      })(),
    };
  }
  // gRPC-Web and Connect streaming: the status travels in a final frame.
  const contentType = uRes.header?.get("content-type") ?? "";
  if (contentType.startsWith("application/grpc-web") || contentType.startsWith("application/connect+"))
    return {
      ...uRes,
      body: (async function* () {
        for await (const chunk of body) yield rewriteEndFrame(chunk);
      })(),
    };
  // Connect unary: an error is a small JSON body with HTTP 500.
  if (uRes.status !== 500 || uRes.header?.get("content-type") !== "application/json") return uRes;
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  let rewritten: Uint8Array = bytes;
  let status = uRes.status;
  try {
    const error = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
    const from = codeFromString(error.code ?? "");
    const to = from === undefined ? undefined : rewrite(from, error.message ?? "");
    if (to !== undefined) {
      rewritten = Buffer.from(JSON.stringify({ ...error, code: codeToString(to) }));
      status = codeToHttpStatus(to);
      uRes.header.set("content-length", String(rewritten.byteLength));
    }
  } catch {
    // Not JSON (e.g. compressed): leave it as it is.
  }
  return {
    ...uRes,
    status,
    body: (async function* () {
      yield rewritten;
    })(),
  };
}

const GRPC_WEB_TRAILER_FLAG = 0x80;
const CONNECT_END_STREAM_FLAG = 0x02;

function frame(flags: number, payload: string): Uint8Array {
  const bytes = Buffer.from(payload, "utf8");
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(bytes.length, 1);
  bytes.copy(out, 5);
  return out;
}

/** Rewrites a chunk that is exactly one gRPC-Web trailer or Connect end-stream frame reporting a decode failure. */
function rewriteEndFrame(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5) return chunk;
  const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const flags = view.readUInt8(0);
  if (view.readUInt32BE(1) !== chunk.length - 5) return chunk;
  const payload = view.subarray(5).toString("utf8");
  if (flags === GRPC_WEB_TRAILER_FLAG) {
    const message = /grpc-message: ([^\r]*)/.exec(payload)?.[1] ?? "";
    const status = /grpc-status: (\d+)\r\n/.exec(payload)?.[1];
    const to = status === undefined ? undefined : rewrite(Number(status) as Code, decodeURIComponent(message));
    if (to === undefined) return chunk;
    return frame(flags, payload.replace(`grpc-status: ${status}\r\n`, `grpc-status: ${to}\r\n`));
  }
  if (flags === CONNECT_END_STREAM_FLAG) {
    try {
      const end = JSON.parse(payload) as { error?: { code?: string; message?: string } };
      const from = codeFromString(end.error?.code ?? "");
      const to = from === undefined ? undefined : rewrite(from, end.error?.message ?? "");
      if (to !== undefined) return frame(flags, JSON.stringify({ ...end, error: { ...end.error, code: codeToString(to) } }));
    } catch {
      // Not JSON: leave it.
    }
  }
  return chunk;
}
