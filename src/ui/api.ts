import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { PolicyService } from "../gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../gen/releasegate/v1/approval_pb.js";
import { ApprovalQueryService } from "../gen/releasegate/v1/approval_query_pb.js";
import { ApprovalRequestService } from "../gen/releasegate/v1/approval_request_pb.js";
import { BreakGlassService } from "../gen/releasegate/v1/break_glass_pb.js";
import { ReleaseService } from "../gen/releasegate/v1/release_pb.js";
import { current, isExpired } from "./auth/session.js";

/**
 * The page's only API: the same Connect services the CLI calls, spoken as
 * Connect/JSON from the page's own origin. Every call carries the signed-in
 * token; a missing or expired sign-in, or the server's UNAUTHENTICATED,
 * goes to `onSignInNeeded` (back through sign-in) instead of an error page.
 */
export interface Api {
  readonly policy: Client<typeof PolicyService>;
  readonly audit: Client<typeof ApprovalAuditService>;
  readonly query: Client<typeof ApprovalQueryService>;
  readonly requests: Client<typeof ApprovalRequestService>;
  readonly breakGlass: Client<typeof BreakGlassService>;
  readonly release: Client<typeof ReleaseService>;
}

export function createApi(onSignInNeeded: () => Promise<never>): Api {
  const auth: Interceptor = (next) => async (req) => {
    const session = current();
    if (session === undefined || isExpired(session)) return onSignInNeeded();
    req.header.set("authorization", `Bearer ${session.token}`);
    try {
      return await next(req);
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) return onSignInNeeded();
      throw err;
    }
  };
  const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [auth] });
  const client = <S extends DescService>(service: S) => createClient(service, transport);
  return {
    policy: client(PolicyService),
    audit: client(ApprovalAuditService),
    query: client(ApprovalQueryService),
    requests: client(ApprovalRequestService),
    breakGlass: client(BreakGlassService),
    release: client(ReleaseService),
  };
}

/** The server's message for a failed call, for the person to read (e.g. why they may not approve). */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  return e.rawMessage === "" ? Code[e.code] : e.rawMessage;
}

/** True when the server does not (yet) offer the RPC: the page then leaves that part out and says so. */
export function isUnimplemented(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unimplemented;
}
