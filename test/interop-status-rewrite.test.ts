import * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATUS_REWRITES } from "../src/server/node-handler.js";
import { COMPRESSED, envelope } from "./support/grpc-envelope.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Every row of STATUS_REWRITES, on every protocol that can produce it, over
// the real wire: what connect-es would answer INTERNAL comes out as the row's
// code. A row without a case here fails the coverage test at the bottom.

let server: TestServer;
let admin: string;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  session = http2.connect(server.baseUrl);
  session.on("error", () => undefined);
});
afterAll(async () => {
  session?.destroy();
  await server?.stop();
});

const UNARY = "/forest.v1.PolicyService/ListPolicies";
const STREAM = "/releasegate.v1.ApprovalAuditService/WatchApprovalEvents";
/** Not protobuf: field 1, wire type 7 (no such wire type). */
const NOT_PROTOBUF = new Uint8Array([0x0f, 0xff, 0xff, 0xff]);

/** The request body that makes connect-es answer each row's status. */
const BODIES: Record<string, { framed: Buffer; unary?: Uint8Array }> = {
  "parse binary": { framed: envelope(NOT_PROTOBUF), unary: NOT_PROTOBUF },
  "received compressed envelope": { framed: envelope(new Uint8Array([1, 2, 3]), COMPRESSED) },
};

function grpcStatus(path: string, body: Uint8Array): Promise<{ status: string; message: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${admin}`,
    });
    let status = "";
    let message = "";
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => undefined);
    req.on("end", () => resolve({ status, message }));
    req.on("error", reject);
    req.end(body);
  });
}

async function post(path: string, contentType: string, body: Uint8Array) {
  const res = await fetch(`${server.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": contentType, authorization: `Bearer ${admin}`, "connect-protocol-version": "1" },
    body,
  });
  return { status: res.status, text: Buffer.from(await res.arrayBuffer()).toString("latin1") };
}

describe.each(STATUS_REWRITES.map((r) => [r.messagePrefix, r] as const))("rewrite of %s", (prefix, row) => {
  const bodies = BODIES[prefix];
  const toName = Code[row.to];

  it(`answers gRPC (unary and streaming) ${toName} instead of ${Code[row.from]}`, async () => {
    for (const path of [UNARY, STREAM]) {
      const answer = await grpcStatus(path, bodies!.framed);
      expect(answer.status, `${path}: ${answer.message}`).toBe(String(row.to));
      expect(answer.message.startsWith(prefix)).toBe(true);
    }
  });

  it(`answers a gRPC-Web trailer frame with ${toName}`, async () => {
    for (const path of [UNARY, STREAM]) {
      const { text } = await post(path, "application/grpc-web+proto", bodies!.framed);
      expect(text).toContain(`grpc-status: ${row.to}\r\n`);
    }
  });

  it(`answers a Connect end-stream frame with ${toName}`, async () => {
    const { text } = await post(STREAM, "application/connect+proto", bodies!.framed);
    expect(text).toContain(`"code":"${codeToString(row.to)}"`);
  });

  it(`answers Connect unary ${toName} where the protocol can produce the case`, async () => {
    if (bodies!.unary === undefined) {
      // Connect unary bodies are not enveloped: no compressed-envelope case exists there.
      expect(prefix).toBe("received compressed envelope");
      return;
    }
    const { status, text } = await post(UNARY, "application/proto", bodies!.unary);
    expect(status).toBe(codeToHttpStatus(row.to));
    expect(JSON.parse(text)).toMatchObject({ code: codeToString(row.to) });
  });
});

it("has a request body for every row of the table", () => {
  expect(Object.keys(BODIES).sort()).toEqual(STATUS_REWRITES.map((r) => r.messagePrefix).sort());
});
