import { create, type DescMessage, type DescMethod, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/**
 * The load generator's client: unary calls over `@grpc/grpc-js`, an
 * independent gRPC stack that costs less CPU per call than connect-node's
 * client (which shares the machine with the server), with messages encoded
 * by protobuf-es. Each caller has its own HTTP/2 connection.
 */
export class GrpcJsCaller {
  readonly #client: grpc.Client;
  readonly #metadata = new grpc.Metadata();

  constructor(baseUrl: string, token: string) {
    this.#client = new grpc.Client(new URL(baseUrl).host, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    this.#metadata.set("authorization", `Bearer ${token}`);
  }

  unary<I extends DescMessage, O extends DescMessage>(method: DescMethod & { input: I; output: O }, input: MessageInitShape<I>): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        `/${method.parent.typeName}/${method.name}`,
        (message: MessageShape<I>) => Buffer.from(toBinary(method.input, message)),
        (bytes: Buffer) => fromBinary(method.output, bytes),
        create(method.input, input),
        this.#metadata,
        (err, response) => (err ? reject(err) : resolve(response as MessageShape<O>)),
      );
    });
  }

  close(): void {
    this.#client.close();
  }
}
