import { create, createFileRegistry, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import type { GrpcJsCaller } from "./grpc-js-caller.js";

/**
 * `grpc.health.v1.Health` for the load generator, built from the published
 * field numbers so the harness does not depend on where the server keeps its
 * generated copy.
 */
export const HealthService: DescService = (() => {
  const optional = FieldDescriptorProto_Label.OPTIONAL;
  const file = create(FileDescriptorProtoSchema, {
    name: "bench/grpc_health_v1.proto",
    package: "grpc.health.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "HealthCheckRequest",
        field: [{ name: "service", jsonName: "service", number: 1, label: optional, type: FieldDescriptorProto_Type.STRING }],
      },
      {
        name: "HealthCheckResponse",
        field: [
          {
            name: "status",
            jsonName: "status",
            number: 1,
            label: optional,
            type: FieldDescriptorProto_Type.ENUM,
            typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus",
          },
        ],
        enumType: [
          {
            name: "ServingStatus",
            value: [
              { name: "UNKNOWN", number: 0 },
              { name: "SERVING", number: 1 },
              { name: "NOT_SERVING", number: 2 },
              { name: "SERVICE_UNKNOWN", number: 3 },
            ],
          },
        ],
      },
    ],
    service: [
      {
        name: "Health",
        method: [
          { name: "Check", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse" },
        ],
      },
    ],
  });
  const service = createFileRegistry(file, () => undefined).getService("grpc.health.v1.Health");
  if (service === undefined) throw new Error("health descriptor did not build");
  return service;
})();

const CHECK = HealthService.method.check as DescMethod;

/** `grpc.health.v1.Health/Check` through the load generator's `caller`, as a plain function. */
export function healthCheck(caller: GrpcJsCaller): () => Promise<unknown> {
  return () => caller.unary(CHECK, {});
}
