import type { DescMessage, DescMethod, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { PolicyService } from "../../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalQueryService } from "../../src/gen/releasegate/v1/approval_query_pb.js";
import { ApproverService } from "../../src/gen/releasegate/v1/approver_pb.js";
import { BreakGlassService } from "../../src/gen/releasegate/v1/break_glass_pb.js";
import { EnvironmentService } from "../../src/gen/releasegate/v1/environment_pb.js";
import { ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { WebhookService } from "../../src/gen/releasegate/v1/webhook_pb.js";

/** Every service that requires a token; the suite iterates over all their methods. */
export const AUTHENTICATED_SERVICES: readonly DescService[] = [
  PolicyService,
  ReleaseService,
  ApprovalAuditService,
  ApproverService,
  BreakGlassService,
  EnvironmentService,
  ApprovalQueryService,
  WebhookService,
];

/** Every method of every authenticated service, with its service. */
export const ALL_METHODS: readonly DescMethod[] = AUTHENTICATED_SERVICES.flatMap((s) => s.methods);

/** `forest.v1.PolicyService/CreatePolicy` */
export function methodPath(m: DescMethod): string {
  return `${m.parent.typeName}/${m.name}`;
}

/** What a call ended with: "ok", or the error code and raw message. */
export interface Outcome {
  readonly code: Code | "ok";
  readonly message: string;
}

// A server stream that stays open (no error) this long counts as answered "ok";
// it is a bound on waiting, not a synchronisation sleep.
const STREAM_OPEN_BOUND_MS = 300;

/**
 * Calls any unary or server-streaming method generically and reports how it
 * ended. A server stream is read until its first message, its end, its
 * error, or the open-stream bound.
 */
export async function callMethod(
  transport: Transport,
  method: DescMethod,
  message: MessageInitShape<DescMessage>,
): Promise<Outcome> {
  const client = createClient(method.parent, transport) as unknown as Record<
    string,
    (req: unknown, opts?: { signal?: AbortSignal; timeoutMs?: number }) => unknown
  >;
  const fn = client[method.localName]!;
  try {
    if (method.methodKind === "unary") {
      await (fn(message, { timeoutMs: 15_000 }) as Promise<unknown>);
      return { code: "ok", message: "" };
    }
    if (method.methodKind !== "server_streaming") throw new Error(`unsupported method kind ${method.methodKind}`);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), STREAM_OPEN_BOUND_MS);
    try {
      for await (const _ of fn(message, { signal: abort.signal }) as AsyncIterable<unknown>) break;
      return { code: "ok", message: "" };
    } catch (err) {
      if (abort.signal.aborted) return { code: "ok", message: "stream open" };
      throw err;
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

/** Readable code name for assertion messages. */
export function codeName(code: Code | "ok"): string {
  return code === "ok" ? "OK" : (Code[code] ?? String(code));
}
