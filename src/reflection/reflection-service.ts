import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import {
  type ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  type ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as V1AlphaRequestSchema,
  ServerReflectionResponseSchema as V1AlphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { DescriptorIndex } from "./descriptor-index.js";

/**
 * Answers one reflection request. `sent` holds the files already sent on
 * this stream: like grpc-go, the requested file is always sent, its imports
 * only once per stream.
 */
export function answerReflection(
  index: DescriptorIndex,
  req: ServerReflectionRequest,
  sent: Set<string>,
): ServerReflectionResponse {
  const base = { validHost: req.host, originalRequest: req };
  const error = (code: Code, message: string) =>
    create(ServerReflectionResponseSchema, {
      ...base,
      messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } },
    });
  const files = (file: ReturnType<DescriptorIndex["fileByName"]>, what: string) => {
    if (file === undefined) return error(Code.NotFound, `${what} not found`);
    const all = index.withDependencies(file).filter((f, i) => i === 0 || !sent.has(f.proto.name));
    for (const f of all) sent.add(f.proto.name);
    return create(ServerReflectionResponseSchema, {
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: { fileDescriptorProto: all.map((f) => index.encode(f)) },
      },
    });
  };
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        },
      });
    case "fileByFilename":
      return files(index.fileByName(r.value), `file "${r.value}"`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(r.value), `symbol "${r.value}"`);
    case "fileContainingExtension":
      // No served file declares extensions.
      return error(
        Code.NotFound,
        `extension ${r.value.extensionNumber} of "${r.value.containingType}" not found`,
      );
    case "allExtensionNumbersOfType":
      if (index.fileBySymbol(r.value) === undefined) return error(Code.NotFound, `type "${r.value}" not found`);
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: r.value, extensionNumber: [] },
        },
      });
    default:
      return error(Code.InvalidArgument, "message_request: one of its fields must be set");
  }
}

/** `grpc.reflection.v1.ServerReflection` (what grpcurl and Postman try first). */
export function createReflectionHandlers(index: DescriptorIndex): ServiceImpl<typeof ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) yield answerReflection(index, req, sent);
    },
  };
}

/**
 * `grpc.reflection.v1alpha.ServerReflection`, for older clients. Its messages
 * are identical to v1's on the wire, so requests and answers are converted
 * through their binary form.
 */
export function createReflectionV1AlphaHandlers(index: DescriptorIndex): ServiceImpl<typeof ServerReflectionV1Alpha> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const alpha of requests) {
        const req = fromBinary(ServerReflectionRequestSchema, toBinary(V1AlphaRequestSchema, alpha));
        const res = answerReflection(index, req, sent);
        yield fromBinary(V1AlphaResponseSchema, toBinary(ServerReflectionResponseSchema, res));
      }
    },
  };
}
