import { Code } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { FUZZ_PROJECT } from "./support/fuzz-arbitraries.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { ALL_METHODS, callMethod, codeName, methodPath } from "./support/rpc-catalog.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer } from "./support/server.js";

// Authentication, per RPC: every method of every authenticated service is
// called with each kind of bad credential and must answer UNAUTHENTICATED
// with a message that says why (and never run the handler).

const ISSUER = "https://issuer.releasegate.test";
const AUDIENCE = "releasegate-api";
const counters = new SuiteCounters("security-authn");
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ env: { RELEASEGATE_JWT_ISSUER: ISSUER, RELEASEGATE_JWT_AUDIENCE: AUDIENCE } });
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

const key = (secret: string) => new TextEncoder().encode(secret);
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

interface Claims {
  sub?: string;
  iss?: string;
  aud?: string;
  exp?: number;
  nbf?: number;
}

function sign(claims: Claims, secret = TEST_JWT_SECRET, alg = "HS256"): Promise<string> {
  const { sub, iss, aud, exp, nbf } = { sub: "ada", iss: ISSUER, aud: AUDIENCE, exp: now() + 3600, ...claims };
  let jwt = new SignJWT({ org_roles: { acme: "admin" }, preferred_username: "Ada" })
    .setProtectedHeader({ alg, typ: "JWT" })
    .setIssuedAt();
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  if (iss !== undefined) jwt = jwt.setIssuer(iss);
  if (aud !== undefined) jwt = jwt.setAudience(aud);
  if (exp !== undefined) jwt = jwt.setExpirationTime(exp);
  if (nbf !== undefined) jwt = jwt.setNotBefore(nbf);
  return jwt.sign(key(secret));
}

/** A bad credential: the authorization header to send (undefined: none) and the reason we expect. */
interface BadCredential {
  readonly name: string;
  readonly header: () => Promise<string | undefined>;
  readonly reason: RegExp;
}

const BAD: readonly BadCredential[] = [
  { name: "no authorization header", header: async () => undefined, reason: /missing authorization header/ },
  { name: "Basic scheme", header: async () => "Basic YWRhOnNlY3JldA==", reason: /must be 'Bearer <token>'/ },
  { name: "garbage token", header: async () => "Bearer not.a.jwt", reason: /invalid token/ },
  {
    name: "wrong signature (other secret)",
    header: async () => `Bearer ${await sign({}, "another-secret-that-is-also-32-characters-long")}`,
    reason: /invalid token \(bad signature\)/,
  },
  {
    name: "alg none",
    header: async () =>
      `Bearer ${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "ada", iss: ISSUER, aud: AUDIENCE, exp: now() + 3600, org_roles: { acme: "admin" } })}.`,
    reason: /invalid token/,
  },
  {
    name: "HS512 with the right secret (algorithm not allowed)",
    header: async () => `Bearer ${await sign({}, TEST_JWT_SECRET, "HS512")}`,
    reason: /invalid token \(algorithm not allowed\)/,
  },
  {
    name: "tampered payload (org_roles widened after signing)",
    header: async () => {
      const [h, , s] = (await sign({ sub: "mallory" })).split(".");
      const payload = b64({ sub: "mallory", iss: ISSUER, aud: AUDIENCE, exp: now() + 3600, org_roles: { acme: "admin", other: "admin" } });
      return `Bearer ${h}.${payload}.${s}`;
    },
    reason: /invalid token \(bad signature\)/,
  },
  { name: "expired", header: async () => `Bearer ${await sign({ exp: now() - 3600 })}`, reason: /invalid token \(expired\)/ },
  {
    name: "not yet valid (nbf in the future)",
    header: async () => `Bearer ${await sign({ nbf: now() + 3600 })}`,
    reason: /invalid token \(claim check failed/,
  },
  {
    name: "wrong issuer",
    header: async () => `Bearer ${await sign({ iss: "https://evil.test" })}`,
    reason: /invalid token \(claim check failed/,
  },
  {
    name: "wrong audience",
    header: async () => `Bearer ${await sign({ aud: "some-other-api" })}`,
    reason: /invalid token \(claim check failed/,
  },
  {
    name: "no subject",
    header: async () => `Bearer ${await sign({ sub: "" })}`,
    reason: /token has no subject|invalid token/,
  },
];

function transportWith(header: string | undefined, protocol: "gRPC" | "Connect") {
  const interceptors =
    header === undefined
      ? []
      : [
          (next: (req: { header: Headers }) => unknown) => (req: { header: Headers }) => {
            req.header.set("authorization", header);
            return next(req);
          },
        ];
  return protocol === "gRPC"
    ? createGrpcTransport({ baseUrl: server.baseUrl, interceptors: interceptors as never })
    : createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", interceptors: interceptors as never });
}

describe("a valid token is accepted (control)", () => {
  it("ListPolicies with issuer and audience answers OK", async () => {
    const outcome = await callMethod(transportWith(`Bearer ${await sign({})}`, "gRPC"), PolicyService.method.listPolicies, {
      project: FUZZ_PROJECT,
    });
    expect(outcome).toEqual({ code: "ok", message: "" });
  });
});

describe.each(BAD)("$name", (bad) => {
  for (const protocol of ["gRPC", "Connect"] as const) {
    it(`is UNAUTHENTICATED on every RPC over ${protocol}`, async () => {
      const transport = transportWith(await bad.header(), protocol);
      const failures: string[] = [];
      for (const method of ALL_METHODS) {
        const outcome = await callMethod(transport, method, { project: FUZZ_PROJECT });
        if (outcome.code !== Code.Unauthenticated || !bad.reason.test(outcome.message))
          failures.push(`${methodPath(method)}: ${codeName(outcome.code)} ${outcome.message}`);
      }
      expect(failures).toEqual([]);
      counters.add("bad credentials × every RPC (no token, Basic, garbage, wrong key, alg none, HS512, tampered, expired, nbf, issuer, audience, no sub)", ALL_METHODS.length, "UNAUTHENTICATED with the reason");
    });
  }
});
