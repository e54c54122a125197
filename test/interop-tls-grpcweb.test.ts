import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { authHeader, startTestServer, type TestServer, token } from "./support/server.js";

// The same port also serves gRPC-Web, and TLS from cert/key files (ALPN picks
// HTTP/2 or HTTP/1.1), each exercised with a real client.

const project = { organisation: "acme", project: "tls" };
let admin: string;

beforeAll(async () => {
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});

async function listOver(transport: Transport): Promise<string[]> {
  const { policies } = await createClient(PolicyService, transport).listPolicies({ project });
  return policies.map((p) => p.name);
}

describe("gRPC-Web on the cleartext port", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    await server.client(PolicyService, admin).createPolicy({
      project,
      name: "web-branch",
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: { case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern: "^main$" } },
    });
  });
  afterAll(() => server?.stop());

  it("answers a gRPC-Web client over HTTP/1.1", async () => {
    const transport = createGrpcWebTransport({
      baseUrl: server.baseUrl,
      httpVersion: "1.1",
      interceptors: authHeader(admin) as never,
    });
    expect(await listOver(transport)).toEqual(["web-branch"]);
  });
});

describe("TLS from TLS_CERT_FILE and TLS_KEY_FILE", () => {
  let server: TestServer;
  let dir: string;
  let ca: Buffer;
  let baseUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rg-tls-"));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ], { stdio: "ignore" });
    ca = readFileSync(cert);
    server = await startTestServer({ env: { TLS_CERT_FILE: cert, TLS_KEY_FILE: key } });
    baseUrl = `https://127.0.0.1:${server.app.port}`;
    await createClient(
      PolicyService,
      createGrpcTransport({ baseUrl, nodeOptions: { ca }, interceptors: authHeader(admin) as never }),
    ).createPolicy({
      project,
      name: "tls-approval",
      policyType: PolicyType.EXTERNAL_APPROVAL,
      config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
    });
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serves gRPC over HTTP/2 with TLS", async () => {
    const transport = createGrpcTransport({ baseUrl, nodeOptions: { ca }, interceptors: authHeader(admin) as never });
    expect(await listOver(transport)).toEqual(["tls-approval"]);
  });

  it("serves Connect JSON over HTTP/1.1 with TLS (ALPN falls back)", async () => {
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      nodeOptions: { ca },
      interceptors: authHeader(admin) as never,
    });
    expect(await listOver(transport)).toEqual(["tls-approval"]);
  });

  it("refuses a client that does not trust the certificate", async () => {
    const transport = createGrpcTransport({ baseUrl, interceptors: authHeader(admin) as never });
    await expect(listOver(transport)).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});
