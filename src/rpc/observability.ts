import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { callerKey } from "../auth/caller.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";

/** Request id header: honoured when a caller sends a sane one, else generated; always echoed. */
export const REQUEST_ID_HEADER = "x-request-id";
const REQUEST_ID = /^[A-Za-z0-9._:/-]{1,128}$/;

/** gRPC code name as in the spec and grpcurl output: `NOT_FOUND`, `OK`. */
export function codeName(code: Code | 0): string {
  if (code === 0) return "OK";
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Organisation and project named by a request (`project: {organisation, project}` or top-level fields). */
function scopeOf(message: unknown): { organisation?: string; project?: string } {
  if (typeof message !== "object" || message === null) return {};
  const m = message as Record<string, unknown>;
  const nested = m.project;
  if (typeof nested === "object" && nested !== null) {
    const p = nested as Record<string, unknown>;
    return {
      organisation: typeof p.organisation === "string" ? p.organisation : undefined,
      project: typeof p.project === "string" ? p.project : undefined,
    };
  }
  return {
    organisation: typeof m.organisation === "string" ? m.organisation : undefined,
    project: typeof nested === "string" ? nested : undefined,
  };
}

/** Decision metrics read from successful responses (EvaluatePolicies; votes). */
function countDecisions(metrics: Metrics, method: string, message: unknown, actor: string | undefined): void {
  const m = message as Record<string, unknown>;
  if (method === "EvaluatePolicies" && Array.isArray(m.evaluations)) {
    for (const e of m.evaluations as { policyType: number; passed: boolean }[])
      metrics.policyDecisions.inc({ policy_type: policyTypeName(e.policyType), decision: e.passed ? "passed" : "blocked" });
    return;
  }
  if (!/^(External)?(Approve|Reject)Release$/.test(method)) return;
  const state = m.state as { decisions?: { userId: string; decision: string; decisionKind: string }[] } | undefined;
  const mine = state?.decisions?.find((d) => d.userId === actor);
  if (mine !== undefined) metrics.approvalDecisions.inc({ kind: mine.decisionKind || "peer", decision: mine.decision });
}

const POLICY_TYPES = ["unspecified", "soak_time", "branch_restriction", "external_approval", "supersede_pending"];
function policyTypeName(t: number): string {
  return POLICY_TYPES[t] ?? String(t);
}

/**
 * One JSON log line and the RPC metrics per call: method, gRPC code,
 * duration, actor, organisation/project from the request, request id
 * (honoured from `x-request-id`, else generated, echoed in the response
 * headers or error metadata). Never logs tokens, headers or comments.
 * Install outermost, so it sees the code the client receives.
 */
export function observabilityInterceptor(logger: Logger, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const incoming = req.header.get(REQUEST_ID_HEADER);
    const requestId = incoming !== null && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    const service = req.service.typeName;
    const method = req.method.name;
    const scope = req.stream ? {} : scopeOf(req.message);
    metrics.rpcInFlight.inc();
    let done = false;
    const finish = (err: unknown, response?: unknown) => {
      if (done) return;
      done = true;
      metrics.rpcInFlight.dec();
      const code = err === undefined ? 0 : ConnectError.from(err).code;
      const seconds = (performance.now() - started) / 1000;
      const labels = { service, method, code: codeName(code) };
      metrics.rpcRequests.inc(labels);
      metrics.rpcDuration.observe(labels, seconds);
      const actor = req.contextValues.get(callerKey)?.userId;
      if (err === undefined && response !== undefined) countDecisions(metrics, method, response, actor);
      const line = {
        requestId,
        service,
        method,
        code: labels.code,
        durationMs: Math.round(seconds * 1e4) / 10,
        actor,
        ...scope,
        ...(err === undefined ? {} : { error: ConnectError.from(err).rawMessage }),
      };
      if (code === Code.Internal || code === Code.Unknown) logger.error(line, "rpc");
      else logger.info(line, "rpc");
    };
    const tag = (err: unknown) => {
      const e = ConnectError.from(err);
      e.metadata.set(REQUEST_ID_HEADER, requestId);
      return e;
    };
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, requestId);
      if (!res.stream) {
        finish(undefined, res.message);
        return res;
      }
      const source = res.message;
      async function* observed() {
        try {
          yield* source;
          finish(undefined);
        } catch (err) {
          finish(err);
          throw tag(err);
        } finally {
          // The client went away (return() on the iterator): count it as cancelled.
          finish(new ConnectError("stream closed", Code.Canceled));
        }
      }
      return { ...res, message: observed() } as StreamResponse;
    } catch (err) {
      finish(err);
      throw tag(err);
    }
  };
}
