import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminServer } from "../src/admin/admin-server.js";
import { ServerHealth } from "../src/health/health.js";
import { createMetrics } from "../src/metrics.js";
import { grpcJsClient, unary, waitFor } from "./support/grpc-js.js";
import { startTestServer, type TestServer } from "./support/server.js";

const HealthClient = grpcJsClient("grpc/health/v1/health.proto", "grpc.health.v1.Health");

interface HealthResponse {
  status: string;
}

describe("grpc.health.v1.Health over grpc-js", () => {
  let server: TestServer;
  let client: grpc.Client;

  beforeAll(async () => {
    server = await startTestServer();
    client = new HealthClient(`127.0.0.1:${server.app.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
  });

  it("answers SERVING for the server and each served service, without a token", async () => {
    for (const service of ["", "forest.v1.PolicyService", "releasegate.v1.ReleaseService", "grpc.health.v1.Health"]) {
      const res = await unary<HealthResponse>(client, "Check", { service });
      expect(res.status, service).toBe("SERVING");
    }
  });

  it("answers NOT_FOUND naming an unknown service", async () => {
    const err = await unary(client, "Check", { service: "nope.v1.Nothing" }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    // connect-es percent-encodes ':' in grpc-message and grpc-js does not decode it back.
    expect(decodeURIComponent((err as grpc.ServiceError).details)).toBe('service: unknown service "nope.v1.Nothing"');
  });

  it("streams SERVICE_UNKNOWN on Watch of an unknown service", async () => {
    const call = (client as unknown as { Watch: (r: unknown) => grpc.ClientReadableStream<HealthResponse> }).Watch({
      service: "nope.v1.Nothing",
    });
    const first = await new Promise<HealthResponse>((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
    });
    expect(first.status).toBe("SERVICE_UNKNOWN");
    call.cancel();
  });
});

describe("health while draining", () => {
  it("Watch sees SERVING then NOT_SERVING when the server stops", async () => {
    const server = await startTestServer();
    const client = new HealthClient(`127.0.0.1:${server.app.port}`, grpc.credentials.createInsecure());
    const adminUrl = `http://127.0.0.1:${server.app.adminPort}`;
    try {
      expect((await fetch(`${adminUrl}/readyz`)).status).toBe(200);
      const seen: string[] = [];
      const call = (client as unknown as { Watch: (r: unknown) => grpc.ClientReadableStream<HealthResponse> }).Watch({
        service: "forest.v1.PolicyService",
      });
      call.on("data", (r: HealthResponse) => seen.push(r.status));
      const ended = new Promise<void>((resolve) => {
        call.on("end", resolve);
        call.on("error", () => resolve());
      });
      await waitFor(() => seen.length === 1, 5_000, "first Watch status");
      expect(seen).toEqual(["SERVING"]);
      const stopping = server.stop();
      await ended;
      await stopping;
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    } finally {
      client.close();
    }
  });
});

describe("admin HTTP port", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.stop());

  it("GET /healthz answers 200 ok", async () => {
    const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok\n");
  });

  it("GET /readyz answers 200 ready once migrations ran and the database answers", async () => {
    const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ready\n");
  });

  it("answers 404 naming the endpoints for an unknown path", async () => {
    const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/nope`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("not found: try /healthz, /readyz or /metrics\n");
  });
});

describe("admin /readyz follows the server's health", () => {
  it("answers 503 before ready, 200 when the database answers, 503 when it does not, 503 draining", async () => {
    let databaseUp = true;
    const health = new ServerHealth({
      services: ["forest.v1.PolicyService"],
      ping: async () => {
        if (!databaseUp) throw new Error("connection refused");
      },
    });
    const admin = new AdminServer({
      host: "127.0.0.1",
      port: 0,
      health,
      registry: createMetrics().registry,
      logger: pino({ level: "silent" }),
    });
    await admin.start();
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${admin.port}/readyz`);
      return `${res.status} ${await res.text()}`;
    };
    try {
      expect(await readyz()).toBe("503 not ready: starting or database not answering\n");
      await health.markReady();
      expect(await readyz()).toBe("200 ready\n");
      databaseUp = false;
      expect(await readyz()).toBe("503 not ready: starting or database not answering\n");
      databaseUp = true;
      expect(await readyz()).toBe("200 ready\n");
      health.markDraining();
      expect(await readyz()).toBe("503 draining\n");
    } finally {
      await admin.stop();
    }
  });
});
