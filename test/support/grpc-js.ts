import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** A grpc-js service client constructor loaded from one of our .proto files (an independent client stack). */
export function grpcJsClient(protoFile: string, service: string): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(protoFile, { includeDirs: ["proto"], keepCase: true, enums: String, defaults: true });
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of service.split(".")) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}

/** Calls a unary grpc-js method as a promise. */
export function unary<T>(client: grpc.Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: unknown, cb: (err: grpc.ServiceError | null, res: T) => void) => void>)[
      method
    ]!(request, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Waits until `condition` holds, polling every 20 ms, failing after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
