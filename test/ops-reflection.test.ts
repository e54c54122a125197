import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcJsClient } from "./support/grpc-js.js";
import { startTestServer, type TestServer } from "./support/server.js";

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.stop());

describe.each(["v1", "v1alpha"])("grpc.reflection.%s over a grpc-js client", (version) => {
  const Client = grpcJsClient(`grpc/reflection/${version}/reflection.proto`, `grpc.reflection.${version}.ServerReflection`);
  let client: grpc.Client;
  beforeAll(() => {
    client = new Client(`127.0.0.1:${server.app.port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => client?.close());

  /** Sends the requests on one stream (no token) and collects one answer per request. */
  function ask(...requests: object[]): Promise<ReflectionResponse[]> {
    const call = (client as unknown as { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, ReflectionResponse> })
      .ServerReflectionInfo();
    const answers: ReflectionResponse[] = [];
    return new Promise((resolve, reject) => {
      call.on("data", (r: ReflectionResponse) => answers.push(r));
      call.on("end", () => resolve(answers));
      call.on("error", reject);
      for (const r of requests) call.write(r);
      call.end();
    });
  }
  const fileNames = (r: ReflectionResponse | undefined) =>
    (r?.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b).name);

  it("lists every served service", async () => {
    const [res] = await ask({ list_services: "" });
    expect(res?.list_services_response?.service.map((s) => s.name)).toEqual([
      "forest.v1.PolicyService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "releasegate.v1.ApprovalAuditService",
      "releasegate.v1.ApprovalQueryService",
      "releasegate.v1.ApprovalRequestService",
      "releasegate.v1.ApproverService",
      "releasegate.v1.BreakGlassService",
      "releasegate.v1.EnvironmentService",
      "releasegate.v1.ReleaseService",
    ]);
  });

  it("describes forest.v1.PolicyService: the file with its methods, then its imports", async () => {
    const [res] = await ask({ file_containing_symbol: "forest.v1.PolicyService" });
    const files = (res?.file_descriptor_response?.file_descriptor_proto ?? []).map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
    expect(files[0]?.name).toBe("forest/v1/policy.proto");
    const service = files[0]?.service.find((s) => s.name === "PolicyService");
    expect(service?.method.map((m) => m.name)).toContain("EvaluatePolicies");
    expect(service?.method.find((m) => m.name === "EvaluatePolicies")?.inputType).toBe(".forest.v1.EvaluatePoliciesRequest");
    // Every import is there too, so a client can build the descriptor set.
    const names = new Set(files.map((f) => f.name));
    for (const f of files) for (const dep of f.dependency) expect(names, `${f.name} imports ${dep}`).toContain(dep);
  });

  it("finds the file of a method, a nested message and a file by name", async () => {
    const answers = await ask(
      { file_containing_symbol: "forest.v1.PolicyService.EvaluatePolicies" },
      { file_containing_symbol: "grpc.health.v1.HealthCheckResponse.ServingStatus" },
      { file_by_filename: "releasegate/v1/release.proto" },
    );
    expect(fileNames(answers[0])[0]).toBe("forest/v1/policy.proto");
    expect(fileNames(answers[1])[0]).toBe("grpc/health/v1/health.proto");
    expect(fileNames(answers[2])[0]).toBe("releasegate/v1/release.proto");
  });

  it("answers an unknown symbol with error_response NOT_FOUND naming it", async () => {
    const [res] = await ask({ file_containing_symbol: "nope.v1.Nothing" });
    expect(res?.error_response).toEqual({ error_code: grpc.status.NOT_FOUND, error_message: 'symbol "nope.v1.Nothing" not found' });
  });
});
