import type * as http from "node:http";
import type * as http2 from "node:http2";

type Response = http.ServerResponse | http2.Http2ServerResponse;
type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: Response) => void;
type NodeHeaders = Record<string, string | string[] | number | undefined>;

const GRPC_MESSAGE = "grpc-message";

/**
 * Percent-encodes a status message the way the gRPC spec writes it: only
 * bytes outside printable ASCII, and `%` itself, are escaped.
 * (PROTOCOL-HTTP2.md: Percent-Byte-Unencoded = %x20-%x24 / %x26-%x7E.)
 */
export function encodeGrpcMessage(message: string): string {
  const bytes = Buffer.from(message, "utf8");
  let out = "";
  bytes.forEach((byte, i) => {
    // A space at either end would be trimmed as header whitespace (an
    // organisation of "! " left the message empty): escape it there.
    const edgeSpace = byte === 0x20 && (i === 0 || i === bytes.length - 1);
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25 && !edgeSpace
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  });
  return out;
}

function reencode(headers: NodeHeaders | undefined): void {
  const value = headers?.[GRPC_MESSAGE];
  if (headers === undefined || typeof value !== "string") return;
  try {
    headers[GRPC_MESSAGE] = encodeGrpcMessage(decodeURIComponent(value));
  } catch {
    // Not our encoding: leave it as it is.
  }
}

/**
 * connect-node escapes `grpc-message` with encodeURIComponent, which the spec
 * allows, but grpc-js (and other clients) decode it with decodeURI and show
 * "target_environment%3A is required". Re-encode it minimally so every gRPC
 * client reads the message as written. Wraps the node request handler.
 */
export function withSpecGrpcMessage(handler: Handler): Handler {
  return (req, res) => {
    const contentType = req.headers["content-type"];
    if (typeof contentType === "string" && contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")) {
      const addTrailers = res.addTrailers.bind(res) as (headers: NodeHeaders) => void;
      res.addTrailers = ((headers: NodeHeaders) => {
        reencode(headers);
        addTrailers(headers);
      }) as typeof res.addTrailers;
      const writeHead = res.writeHead.bind(res) as (status: number, ...rest: unknown[]) => Response;
      res.writeHead = ((status: number, ...rest: unknown[]) => {
        for (const arg of rest) if (typeof arg === "object" && arg !== null) reencode(arg as NodeHeaders);
        return writeHead(status, ...rest);
      }) as typeof res.writeHead;
    }
    handler(req, res);
  };
}
