import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvaluatePoliciesRequestSchema, PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { FUZZ_PROJECT } from "./support/fuzz-arbitraries.js";
import { envelope } from "./support/grpc-envelope.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { ALL_METHODS, callMethod, methodPath } from "./support/rpc-catalog.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Bytes that are not valid protobuf (or not even a gRPC envelope) and JSON
// that does not fit the schema, posted straight to every RPC's path. The
// answer must be a deliberate error, never INTERNAL/UNKNOWN (gRPC 13/2,
// Connect "internal"/"unknown", HTTP 500), and the server keeps serving.

const RUNS = Number(process.env.FUZZ_RUNS ?? 30);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const FORBIDDEN_GRPC = new Set(["2", "13"]);
const FORBIDDEN_CONNECT = new Set(["internal", "unknown"]);

const counters = new SuiteCounters("fuzz-wire");
let server: TestServer;
let admin: string;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "fuzzer", orgs: { acme: "admin" } });
  session = http2.connect(server.baseUrl);
  session.on("error", () => undefined);
});
afterAll(async () => {
  counters.write();
  session?.destroy();
  await server?.stop();
});

const validEvaluate = toBinary(
  EvaluatePoliciesRequestSchema,
  create(EvaluatePoliciesRequestSchema, { project: FUZZ_PROJECT, targetEnvironment: "prod" }),
);

/** Bodies that are not a valid request: raw noise, noise in an envelope, lying envelopes, mutated valid messages. */
const grpcBody = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.uint8Array({ maxLength: 512 }).map((b) => envelope(b)),
  fc.uint8Array({ maxLength: 64 }).map((b) => envelope(b, 1)),
  fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: -64, max: 1 << 20 })).map(([b, d]) => envelope(b, 0, d)),
  fc.tuple(fc.nat({ max: validEvaluate.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
    const copy = validEvaluate.slice();
    copy[i] = v;
    return envelope(copy);
  }),
  fc.integer({ min: 1, max: validEvaluate.length - 1 }).map((n) => envelope(validEvaluate.subarray(0, n))),
);

interface GrpcAnswer {
  status: string;
  message: string;
}

function postGrpc(path: string, body: Uint8Array, withToken: boolean): Promise<GrpcAnswer> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": `/${path}`,
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (withToken) headers.authorization = `Bearer ${admin}`;
    const req = session.request(headers);
    let status: string | undefined;
    let message = "";
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", (h) => {
      take(h);
      // A stream that opened and stays open is a valid request: stop waiting after a bound.
      if (status === undefined)
        setTimeout(() => {
          if (status === undefined) {
            status = "open";
            req.close(http2.constants.NGHTTP2_CANCEL);
          }
        }, 300).unref();
    });
    req.on("trailers", take);
    req.on("data", () => undefined);
    req.on("end", () => resolve({ status: status ?? "missing", message }));
    req.on("error", (err) => (status === "open" ? resolve({ status, message }) : reject(err)));
    req.on("close", () => resolve({ status: status ?? "missing", message }));
    req.setTimeout(15_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.end(body);
  });
}

async function postConnect(path: string, body: Uint8Array | string, contentType: string, withToken: boolean) {
  const headers: Record<string, string> = { "content-type": contentType, "connect-protocol-version": "1" };
  if (withToken) headers.authorization = `Bearer ${admin}`;
  const res = await fetch(`${server.baseUrl}/${path}`, { method: "POST", headers, body });
  const text = await res.text();
  let code = "";
  try {
    code = (JSON.parse(text) as { code?: string }).code ?? "";
  } catch {
    code = "";
  }
  return { status: res.status, code, text };
}

async function stillServing(): Promise<void> {
  const outcome = await callMethod(server.grpc(admin), PolicyService.method.listPolicies, { project: FUZZ_PROJECT });
  expect(outcome).toEqual({ code: "ok", message: "" });
}

/** Posts generated bodies as Connect unary requests; none may get HTTP 500 or internal/unknown. */
async function fuzzConnect(
  path: string,
  contentType: string,
  bodies: fc.Arbitrary<[Uint8Array | string, boolean]>,
): Promise<number> {
  let cases = 0;
  await fc.assert(
    fc.asyncProperty(bodies, async ([body, withToken]) => {
      cases++;
      const answer = await postConnect(path, body, contentType, withToken);
      if (answer.status !== 200) {
        expect(answer.status, answer.text).not.toBe(500);
        expect(FORBIDDEN_CONNECT.has(answer.code), answer.text).toBe(false);
      }
    }),
    { numRuns: RUNS, seed: SEED },
  );
  await stillServing();
  return cases;
}

const unary = ALL_METHODS.filter((m) => m.methodKind === "unary");

describe("raw bytes that are not valid protobuf", () => {
  for (const method of ALL_METHODS) {
    it(`${methodPath(method)} as application/grpc over HTTP/2`, async () => {
      let cases = 0;
      await fc.assert(
        fc.asyncProperty(grpcBody, fc.boolean(), async (body, withToken) => {
          cases++;
          const answer = await postGrpc(methodPath(method), body, withToken);
          expect(FORBIDDEN_GRPC.has(answer.status), `grpc-status ${answer.status}: ${answer.message}`).toBe(false);
          expect(answer.status).not.toBe("missing");
        }),
        { numRuns: RUNS, seed: SEED },
      );
      await stillServing();
      counters.add("raw non-protobuf bodies POSTed as application/grpc (HTTP/2)", cases, "no grpc-status 2/13; next call served");
    });
  }

  for (const method of unary) {
    it(`${methodPath(method)} as application/proto over HTTP/1.1`, async () => {
      const body = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 512 }), fc.boolean());
      const cases = await fuzzConnect(methodPath(method), "application/proto", body);
      counters.add("raw non-protobuf bodies POSTed as application/proto (HTTP/1.1)", cases, "no HTTP 500 / internal; next call served");
    });
  }
});

/** JSON that parses but does not fit: wrong types, unknown enum names, overflowing numbers, junk. */
const badJson = fc.oneof(
  fc.json(),
  fc.string(),
  fc.constantFrom(
    '{"project": 5}',
    '{"project": {"organisation": ["acme"], "project": null}}',
    '{"project": {"organisation": "acme", "project": "fuzz"}, "policyType": "POLICY_TYPE_NOPE"}',
    '{"project": {"organisation": "acme", "project": "fuzz"}, "name": "x", "externalApproval": {"requiredApprovals": "1e99"}}',
    '{"project": {"organisation": "acme", "project": "fuzz"}, "soakTime": {"durationSeconds": "99999999999999999999999"}}',
    '{"project": {"organisation": "acme", "project": "fuzz"}, "status": 4294967296}',
    '{"project": {"organisation": "acme", "project": "fuzz"}, "pageSize": -1.5}',
    '{"__proto__": {"admin": true}}',
    '{"constructor": {"prototype": {"x": 1}}}',
    "[]",
    "null",
    '{"project": {"organisation": "acme", "project": "fuzz"}',
  ),
);

/** Posts to a streaming-framed protocol over HTTP/1.1; "open" when a valid stream stays open past the bound. */
async function postFramed(path: string, body: Uint8Array, contentType: string): Promise<string> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 300);
  try {
    const res = await fetch(`${server.baseUrl}/${path}`, {
      method: "POST",
      headers: { "content-type": contentType, authorization: `Bearer ${admin}`, "connect-protocol-version": "1" },
      body,
      signal: abort.signal,
    });
    return `${res.status} ${Buffer.from(await res.arrayBuffer()).toString("latin1")}`;
  } catch (err) {
    if (abort.signal.aborted) return "open";
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

describe("raw bytes over gRPC-Web and Connect streaming", () => {
  const framed = ALL_METHODS.flatMap((m) => [
    { method: m, contentType: "application/grpc-web+proto" },
    ...(m.methodKind === "server_streaming" ? [{ method: m, contentType: "application/connect+proto" }] : []),
  ]);
  for (const { method, contentType } of framed) {
    it(`${methodPath(method)} as ${contentType}`, async () => {
      let cases = 0;
      await fc.assert(
        fc.asyncProperty(grpcBody, async (body) => {
          cases++;
          const answer = await postFramed(methodPath(method), body, contentType);
          expect(answer.startsWith("500"), answer).toBe(false);
          expect(/grpc-status: (2|13)\r\n/.test(answer), answer).toBe(false);
          expect(/"code":"(internal|unknown)"/.test(answer), answer).toBe(false);
        }),
        { numRuns: Math.max(5, Math.ceil(RUNS / 3)), seed: SEED },
      );
      await stillServing();
      counters.add("raw non-protobuf bodies over gRPC-Web and Connect streaming", cases, "no INTERNAL/UNKNOWN; next call served");
    });
  }
});

describe("JSON that does not fit the schema", () => {
  for (const method of unary) {
    it(`${methodPath(method)} as application/json over HTTP/1.1`, async () => {
      const cases = await fuzzConnect(methodPath(method), "application/json", fc.tuple(badJson, fc.constant(true)));
      counters.add("schema-violating JSON POSTed as application/json", cases, "no HTTP 500 / internal; next call served");
    });
  }

  it("answers a body over MAX_REQUEST_BYTES with a deliberate error and keeps serving", async () => {
    const huge = JSON.stringify({ project: FUZZ_PROJECT, targetEnvironment: "x".repeat(2 * 1024 * 1024) });
    const answer = await postConnect(methodPath(PolicyService.method.evaluatePolicies), huge, "application/json", true);
    expect(answer.code).toBe("resource_exhausted");
    await stillServing();
    counters.add("oversized bodies (2 MiB)", 1, "RESOURCE_EXHAUSTED; next call served");
  });
});
