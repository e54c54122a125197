import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
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

// connect-es reports request bytes it cannot decode (not protobuf, or a
// compressed envelope without grpc-encoding) as INTERNAL, like grpc-go. They
// are the caller's fault: we answer INVALID_ARGUMENT, so INTERNAL keeps
// meaning "our bug" in alerts.
const DECODE_FAILURE = /^(parse binary|received compressed envelope)/;

/**
 * `connectNodeAdapter` with one difference: undecodable request messages are
 * answered INVALID_ARGUMENT instead of INTERNAL (gRPC trailers, gRPC-Web
 * trailer frames, Connect unary error bodies and end-stream frames).
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
      .then(async (uRes) => universalResponseToNodeResponse(await asInvalidArgument(uRes), res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code !== Code.Aborted) onHandlerError?.(reason);
      });
  };
}

async function asInvalidArgument(uRes: UniversalServerResponse): Promise<UniversalServerResponse> {
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
        if (trailer.get("grpc-status") === String(Code.Internal) && DECODE_FAILURE.test(message))
          trailer.set("grpc-status", String(Code.InvalidArgument));
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
    if (error.code === "internal" && DECODE_FAILURE.test(error.message ?? "")) {
      rewritten = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument" }));
      status = 400;
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
    if (!payload.includes(`grpc-status: ${Code.Internal}\r\n`) || !DECODE_FAILURE.test(decodeURIComponent(message)))
      return chunk;
    return frame(flags, payload.replace(`grpc-status: ${Code.Internal}\r\n`, `grpc-status: ${Code.InvalidArgument}\r\n`));
  }
  if (flags === CONNECT_END_STREAM_FLAG) {
    try {
      const end = JSON.parse(payload) as { error?: { code?: string; message?: string } };
      if (end.error?.code === "internal" && DECODE_FAILURE.test(end.error.message ?? ""))
        return frame(flags, JSON.stringify({ ...end, error: { ...end.error, code: "invalid_argument" } }));
    } catch {
      // Not JSON: leave it.
    }
  }
  return chunk;
}
