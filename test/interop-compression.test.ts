import * as http2 from "node:http2";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESPONSE_COMPRESS_MIN_BYTES } from "../src/app.js";
import {
  ListPoliciesRequestSchema,
  ListPoliciesResponseSchema,
  PolicyService,
  PolicyType,
} from "../src/gen/forest/v1/policy_pb.js";
import { COMPRESSED, envelope } from "./support/grpc-envelope.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Message compression as a gRPC client negotiates it, read off the wire with
// node:http2: requests may come gzip-compressed; responses are compressed for
// a client that accepts gzip only from RESPONSE_COMPRESS_MIN_BYTES (votes and
// evaluations, a few KiB, go out as they are: compressing them cost CPU for
// little on a datacenter link).

const PROJECT = { organisation: "acme", project: "compress" };
/** Enough policies that the list answer passes RESPONSE_COMPRESS_MIN_BYTES. */
const MANY = 200;
/** A list answer of a few KiB, the size of a vote's answer: above connect's default threshold (1 KiB), below ours. */
const SOME = 30;

let server: TestServer;
let admin: string;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "alice", orgs: { acme: "admin" } });
  session = http2.connect(server.baseUrl);
  const policies = server.client(PolicyService, admin);
  const soaks = async (project: typeof PROJECT, count: number) => {
    for (let i = 0; i < count; i++)
      await policies.createPolicy({
        project,
        name: `soak-before-prod-number-${String(i).padStart(4, "0")}`,
        policyType: PolicyType.SOAK_TIME,
        config: { case: "soakTime", value: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 3600n } },
      });
  };
  await soaks(PROJECT, SOME);
  await soaks({ ...PROJECT, project: "compress-big" }, MANY);
});
afterAll(async () => {
  session?.destroy();
  await server?.stop();
});

interface RawAnswer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One unary gRPC call over a raw HTTP/2 stream: the bytes as they travel, nothing decoded. */
function rawCall(path: string, body: Buffer, extra: http2.OutgoingHttpHeaders): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${admin}`,
      ...extra,
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => {
      headers = h;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ headers, trailers, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    req.end(body);
  });
}

/** The single message of a unary answer: its compressed flag and its payload as sent. */
function unwrap(body: Buffer): { compressed: boolean; payload: Buffer } {
  expect(body.length).toBeGreaterThanOrEqual(5);
  const length = body.readUInt32BE(1);
  expect(body.length).toBe(5 + length);
  return { compressed: body.readUInt8(0) === COMPRESSED, payload: body.subarray(5) };
}

const LIST = `/${PolicyService.typeName}/${PolicyService.method.listPolicies.name}`;
const listRequest = (project: typeof PROJECT) =>
  Buffer.from(toBinary(ListPoliciesRequestSchema, create(ListPoliciesRequestSchema, { project })));

describe("gRPC message compression", () => {
  it("answers a message of a few KiB uncompressed even to a client that accepts gzip", async () => {
    const answer = await rawCall(LIST, envelope(listRequest(PROJECT)), { "grpc-accept-encoding": "gzip" });
    expect(answer.trailers["grpc-status"]).toBe("0");
    // grpc-encoding names what the stream may use; each message's flag says whether it does.
    const { compressed, payload } = unwrap(answer.body);
    expect(compressed).toBe(false);
    expect(payload.length).toBeGreaterThan(1024);
    expect(payload.length).toBeLessThan(RESPONSE_COMPRESS_MIN_BYTES);
    expect(fromBinary(ListPoliciesResponseSchema, payload).policies).toHaveLength(SOME);
  });

  it(`compresses a message of at least ${RESPONSE_COMPRESS_MIN_BYTES} bytes for a client that accepts gzip, and only then`, async () => {
    const big = { ...PROJECT, project: "compress-big" };
    const gzipped = await rawCall(LIST, envelope(listRequest(big)), { "grpc-accept-encoding": "gzip" });
    expect(gzipped.trailers["grpc-status"]).toBe("0");
    expect(gzipped.headers["grpc-encoding"]).toBe("gzip");
    const { compressed, payload } = unwrap(gzipped.body);
    expect(compressed).toBe(true);
    const plain = gunzipSync(payload);
    expect(plain.length).toBeGreaterThanOrEqual(RESPONSE_COMPRESS_MIN_BYTES);
    expect(payload.length).toBeLessThan(plain.length);
    expect(fromBinary(ListPoliciesResponseSchema, plain).policies).toHaveLength(MANY);

    // A client that does not offer gzip gets the same message as it is.
    const identity = await rawCall(LIST, envelope(listRequest(big)), {});
    expect(identity.headers["grpc-encoding"] ?? "identity").toBe("identity");
    const asIs = unwrap(identity.body);
    expect(asIs.compressed).toBe(false);
    expect(asIs.payload.equals(plain)).toBe(true);
  });

  it("accepts a gzip-compressed request", async () => {
    const answer = await rawCall(LIST, envelope(gzipSync(listRequest(PROJECT)), COMPRESSED), { "grpc-encoding": "gzip" });
    expect(answer.trailers["grpc-status"]).toBe("0");
    expect(fromBinary(ListPoliciesResponseSchema, unwrap(answer.body).payload).policies).toHaveLength(SOME);
  });

  it("refuses a compressed request whose encoding it does not know, as UNIMPLEMENTED, naming what it accepts", async () => {
    const answer = await rawCall(LIST, envelope(gzipSync(listRequest(PROJECT)), COMPRESSED), { "grpc-encoding": "snappy" });
    expect(answer.trailers["grpc-status"] ?? answer.headers["grpc-status"]).toBe("12");
    expect(answer.trailers["grpc-accept-encoding"] ?? answer.headers["grpc-accept-encoding"]).toMatch(/gzip/);
  });
});
