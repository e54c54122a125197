import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../src/auth/token-verifier.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { PROTOCOLS, type Protocol, startTestServer, TEST_JWT_SECRET, type TestServer, token } from "./support/server.js";

// Authentication over the wire: every way a token can be missing or wrong
// answers UNAUTHENTICATED with a reason; nothing unsigned is ever accepted.

const project = { organisation: "acme", project: "auth" };
const ROLES = { acme: "admin" } as const;

/** A PolicyService client that sends `authorization` exactly as given (or not at all). */
function rawClient(server: TestServer, protocol: Protocol, authorization?: string) {
  const setHeader: Interceptor = (next) => (req) => {
    if (authorization !== undefined) req.header.set("authorization", authorization);
    return next(req);
  };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: server.baseUrl, interceptors: [setHeader] })
      : createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", interceptors: [setHeader] });
  return createClient(PolicyService, transport);
}

const list = (server: TestServer, protocol: Protocol, authorization?: string) =>
  rawClient(server, protocol, authorization).listPolicies({ project });

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

/** An HMAC token with the test secret; each claim can be left out or changed. */
function signHs(o: { sub?: string; exp?: string; nbf?: string; alg?: string }): Promise<string> {
  const { sub, exp, nbf, alg } = { sub: "ada", exp: "1h", alg: "HS256", ...o };
  let jwt = new SignJWT({ org_roles: ROLES }).setProtectedHeader({ alg });
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  if (exp !== undefined) jwt = jwt.setExpirationTime(exp);
  if (nbf !== undefined) jwt = jwt.setNotBefore(nbf);
  return jwt.sign(new TextEncoder().encode(TEST_JWT_SECRET));
}

const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("HS256 secret mode", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.stop());

  describe.each(PROTOCOLS)("over %s", (protocol) => {
    it("accepts a valid token", async () => {
      const tok = await token({ sub: "ada", orgs: ROLES });
      await expect(list(server, protocol, `Bearer ${tok}`)).resolves.toMatchObject({ policies: [] });
    });

    it("accepts the scheme case-insensitively", async () => {
      const tok = await token({ sub: "ada", orgs: ROLES });
      await expect(list(server, protocol, `bearer ${tok}`)).resolves.toBeDefined();
    });

    it("rejects a call without a token", async () => {
      await expectRpcError(list(server, protocol), Code.Unauthenticated, "missing authorization header (Bearer token)");
    });

    it("rejects a header that is not 'Bearer <token>'", async () => {
      const tok = await token({ sub: "ada", orgs: ROLES });
      for (const header of [`Basic ${tok}`, "Bearer", `Bearer ${tok} extra`, tok])
        await expectRpcError(
          list(server, protocol, header),
          Code.Unauthenticated,
          "authorization header must be 'Bearer <token>'",
        );
    });

    it("rejects a token that is not a JWT", async () => {
      await expectRpcError(
        list(server, protocol, "Bearer not-a-jwt"),
        Code.Unauthenticated,
        "invalid token (malformed or unverifiable)",
      );
    });

    it("rejects a token signed with another secret", async () => {
      const forged = await mintToken("another-secret-that-is-32-characters-long!", { sub: "eve", orgRoles: ROLES });
      await expectRpcError(list(server, protocol, `Bearer ${forged}`), Code.Unauthenticated, "invalid token (bad signature)");
    });

    it("rejects a token whose payload was altered after signing", async () => {
      const tok = await token({ sub: "mia", orgs: { acme: "member" } });
      const [header, , signature] = tok.split(".");
      const altered = `${header}.${b64({ sub: "mia", org_roles: ROLES, exp: 4102444800 })}.${signature}`;
      await expectRpcError(list(server, protocol, `Bearer ${altered}`), Code.Unauthenticated, "invalid token (bad signature)");
    });

    it("rejects an unsigned alg:none token", async () => {
      const none = `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "eve", org_roles: ROLES, exp: 4102444800 })}.`;
      await expectRpcError(
        list(server, protocol, `Bearer ${none}`),
        Code.Unauthenticated,
        "invalid token (algorithm not allowed)",
      );
    });

    it("rejects an expired token", async () => {
      const expired = await mintToken(TEST_JWT_SECRET, { sub: "ada", orgRoles: ROLES, expiresIn: "-1m" });
      await expectRpcError(list(server, protocol, `Bearer ${expired}`), Code.Unauthenticated, "invalid token (expired)");
    });

    it.each([
      ["without an expiry (it would be valid forever)", { exp: undefined }, "invalid token (claim check failed: exp is missing)"],
      ["that is not valid yet", { nbf: "1h" }, "invalid token (claim check failed: nbf is in the future)"],
      ["without a subject", { sub: undefined }, "token has no subject"],
      ["signed HS384 with the right secret (algorithm pinned)", { alg: "HS384" }, "invalid token (algorithm not allowed)"],
    ])("rejects a token %s", async (_, over, message) => {
      await expectRpcError(list(server, protocol, `Bearer ${await signHs(over)}`), Code.Unauthenticated, message);
    });

    it("answers PERMISSION_DENIED to a valid token without a role in the organisation", async () => {
      const outsider = await token({ sub: "olga", orgs: { other: "admin" } });
      await expectRpcError(
        list(server, protocol, `Bearer ${outsider}`),
        Code.PermissionDenied,
        "caller olga has no role in organisation acme",
      );
    });
  });
});

describe("issuer and audience checks", () => {
  let server: TestServer;
  const issuer = "https://idp.example";
  const audience = "releasegate";
  beforeAll(async () => {
    server = await startTestServer({ env: { RELEASEGATE_JWT_ISSUER: issuer, RELEASEGATE_JWT_AUDIENCE: audience } });
  });
  afterAll(() => server?.stop());

  const mint = (o: { issuer?: string; audience?: string }) =>
    mintToken(TEST_JWT_SECRET, { sub: "ada", orgRoles: ROLES, ...o });

  it("accepts the configured issuer and audience", async () => {
    await expect(list(server, "grpc", `Bearer ${await mint({ issuer, audience })}`)).resolves.toBeDefined();
  });

  it.each([
    ["a wrong issuer", { issuer: "https://evil.example", audience }, "iss does not match the configured issuer"],
    ["a wrong audience", { issuer, audience: "someone-else" }, "aud does not match the configured audience"],
    ["no issuer", { audience }, "iss is missing"],
    ["no audience", { issuer }, "aud is missing"],
  ])("rejects %s", async (_, claims, problem) => {
    await expectRpcError(
      list(server, "grpc", `Bearer ${await mint(claims)}`),
      Code.Unauthenticated,
      `invalid token (claim check failed: ${problem})`,
    );
  });
});

describe("RS256 public-key mode", () => {
  let server: TestServer;
  let privateKey: PrivateKey;
  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    privateKey = pair.privateKey;
    server = await startTestServer({
      env: { RELEASEGATE_JWT_SECRET: "", RELEASEGATE_JWT_PUBLIC_KEY: await exportSPKI(pair.publicKey) },
    });
  });
  afterAll(() => server?.stop());

  const sign = (key: PrivateKey, sub = "ada") =>
    new SignJWT({ org_roles: ROLES, preferred_username: sub })
      .setProtectedHeader({ alg: "RS256" })
      .setSubject(sub)
      .setExpirationTime("1h")
      .sign(key);

  it("accepts a token signed with the private key", async () => {
    await expect(list(server, "grpc", `Bearer ${await sign(privateKey)}`)).resolves.toBeDefined();
  });

  it("rejects a token signed with another key pair", async () => {
    const other = await generateKeyPair("RS256");
    await expectRpcError(
      list(server, "grpc", `Bearer ${await sign(other.privateKey)}`),
      Code.Unauthenticated,
      "invalid token (bad signature)",
    );
  });

  it("rejects an HS256 token (no algorithm confusion)", async () => {
    await expectRpcError(
      list(server, "connect", `Bearer ${await token({ sub: "ada", orgs: ROLES })}`),
      Code.Unauthenticated,
      "invalid token (algorithm not allowed)",
    );
  });
});

describe("JWKS mode", () => {
  let server: TestServer;
  let jwks: Server;
  let privateKey: PrivateKey;
  beforeAll(async () => {
    const pair = await generateKeyPair("ES256", { extractable: true });
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    jwks = createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    const { port } = jwks.address() as AddressInfo;
    server = await startTestServer({
      env: { RELEASEGATE_JWT_SECRET: "", RELEASEGATE_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await new Promise((resolve) => jwks?.close(resolve));
  });

  it("accepts a token signed with a key from the JWKS", async () => {
    const tok = await new SignJWT({ org_roles: ROLES })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setSubject("ada")
      .setExpirationTime("1h")
      .sign(privateKey);
    await expect(list(server, "grpc", `Bearer ${tok}`)).resolves.toBeDefined();
  });

  it("rejects a token with an unknown key id", async () => {
    const other = await generateKeyPair("ES256");
    const tok = await new SignJWT({ org_roles: ROLES })
      .setProtectedHeader({ alg: "ES256", kid: "k2" })
      .setSubject("ada")
      .setExpirationTime("1h")
      .sign(other.privateKey);
    await expectRpcError(list(server, "grpc", `Bearer ${tok}`), Code.Unauthenticated, /^invalid token \(/);
  });
});
