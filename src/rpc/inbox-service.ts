import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Location } from "../approver/directory.js";
import { type Access, effectiveRoleOf } from "../auth/access.js";
import { optionalEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError, PermissionDeniedError } from "../errors.js";
import {
  ApprovalRequestSchema,
  type ApprovalRequestService,
  ApprovalRequestState,
  CountPendingApprovalsResponseSchema,
  ListPendingApprovalsResponseSchema,
  PendingApprovalSchema,
} from "../gen/releasegate/v1/approval_request_pb.js";
import { isUuid, requireName } from "../policy/validate.js";
import { type InboxViewer, mayHaveInbox } from "../requests/inbox-eligibility.js";
import { createPendingApprovals, type PendingApproval, type PendingApprovalsDeps } from "../requests/pending-approvals.js";
import { accessOf } from "./context.js";
import { rfc3339, ruleProgressToProto } from "./convert.js";

/** Inbox page size when the request sets none. */
export const INBOX_PAGE_DEFAULT = 50;
/** Larger page sizes are lowered to this. */
export const INBOX_PAGE_MAX = 200;

interface InboxRequest {
  organisation: string;
  project: string;
  targetEnvironment: string;
  all: boolean;
}

interface Shape {
  readonly organisation: string;
  readonly project?: string;
  readonly environment?: string;
  readonly all: boolean;
}

/** What the page token carries: the last request listed and the filters it was issued for. */
interface PageCursor {
  readonly a: string;
  readonly p: string;
  readonly e: string;
  readonly all: boolean;
}

function shapeOf(req: InboxRequest): Shape {
  const organisation = requireName(req.organisation, "organisation");
  const project = req.project === "" ? undefined : requireName(req.project, "project");
  const environment = optionalEnvironment(req.targetEnvironment, "target_environment");
  return {
    organisation,
    ...(project !== undefined ? { project } : {}),
    ...(environment !== undefined ? { environment } : {}),
    all: req.all,
  };
}

function encodeToken(lastId: string, s: Shape): string {
  const c: PageCursor = { a: lastId, p: s.project ?? "", e: s.environment ?? "", all: s.all };
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeToken(token: string, s: Shape): string | undefined {
  if (token === "") return undefined;
  let c: Partial<PageCursor>;
  try {
    c = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<PageCursor>;
  } catch (err) {
    throw new InvalidArgumentError("page_token", "is not a token from a previous response", { cause: err });
  }
  if (typeof c !== "object" || c === null || typeof c.a !== "string" || !isUuid(c.a))
    throw new InvalidArgumentError("page_token", "is not a token from a previous response");
  if (c.p !== (s.project ?? "") || c.e !== (s.environment ?? "") || c.all !== s.all)
    throw new InvalidArgumentError("page_token", "was issued for other filters (project, target_environment, all); start again without it");
  return c.a;
}

function pageSize(requested: number): number {
  if (requested < 0) throw new InvalidArgumentError("page_size", "must not be negative");
  if (requested === 0) return INBOX_PAGE_DEFAULT;
  return Math.min(requested, INBOX_PAGE_MAX);
}

/**
 * Who may ask, and whose inbox it is. `all`: organisation admins only.
 * Otherwise a person who may vote somewhere under the filter (a member by
 * token, or an active grant of at least member): viewers, outsiders and
 * services (which never vote) have no inbox.
 */
async function authorizeInbox(access: Access, s: Shape): Promise<InboxViewer> {
  const { caller } = access;
  const org = s.organisation;
  const viewer: InboxViewer = {
    organisation: org,
    userId: caller.userId,
    ...(caller.orgRoles.get(org) !== undefined ? { tokenRole: caller.orgRoles.get(org) } : {}),
    idpGroups: caller.idpGroups,
    grants: [],
  };
  if (s.all) {
    const role = await effectiveRoleOf(access, org);
    if (role !== "admin")
      throw new PermissionDeniedError(
        `all: only an organisation admin may list every pending request of ${org} (${caller.userId} is ${role === undefined ? "not a member" : `a ${role}`}); leave all unset to list the requests you may approve`,
      );
    return viewer;
  }
  if (caller.actorType === "service")
    throw new PermissionDeniedError(
      `service account ${caller.userId} has no inbox (services never vote); an organisation admin's token may pass all to list every pending request`,
    );
  const withGrants: InboxViewer = { ...viewer, grants: await access.grantsIn(org) };
  const filter: Location = {
    ...(s.project !== undefined ? { project: s.project } : {}),
    ...(s.environment !== undefined ? { environment: s.environment } : {}),
  };
  if (!mayHaveInbox(withGrants, filter, access.clock.now()))
    throw new PermissionDeniedError(
      viewer.tokenRole === undefined && withGrants.grants.length === 0
        ? `caller ${caller.userId} has no role in organisation ${org}`
        : `${viewer.tokenRole ?? "caller"} ${caller.userId} may not vote in organisation ${org}${filter.project !== undefined ? ` (project ${filter.project})` : ""}, so has no inbox there: an inbox lists what you may approve; ask an admin for role member`,
    );
  return withGrants;
}

function toProto(organisation: string, a: PendingApproval) {
  const r = a.request;
  return create(PendingApprovalSchema, {
    ageSeconds: BigInt(a.ageSeconds),
    request: create(ApprovalRequestSchema, {
      id: r.id,
      project: { organisation, project: r.project },
      releaseIntentId: r.releaseIntentId,
      targetEnvironment: r.environment,
      state: ApprovalRequestState.PENDING,
      requestedBy: r.requestedByUserId,
      requestedByActorType: r.requestedByActorType,
      openedBy: r.openedBy,
      requestedAt: rfc3339(r.requestedAt),
      expiresAt: r.expiresAt === undefined ? "" : rfc3339(r.expiresAt),
      authorUserId: r.authorUserId,
      branch: r.branch,
      version: r.version,
      currentApprovals: a.currentApprovals,
      requiredApprovals: a.requiredApprovals,
      ruleProgress: a.ruleProgress.map(ruleProgressToProto),
    }),
  });
}

/**
 * The inbox RPCs of releasegate.v1.ApprovalRequestService (the rest of the
 * service lives with the request lifecycle): validate → authorise → one use
 * case → convert.
 */
export function createInboxHandlers(
  deps: PendingApprovalsDeps,
): Pick<ServiceImpl<typeof ApprovalRequestService>, "listPendingApprovals" | "countPendingApprovals"> {
  const inbox = createPendingApprovals(deps);
  const viewerOf = async (s: Shape, ctx: HandlerContext) => authorizeInbox(accessOf(ctx), s);
  return {
    async listPendingApprovals(req, ctx) {
      const s = shapeOf(req);
      const size = pageSize(req.pageSize);
      const afterId = decodeToken(req.pageToken, s);
      const viewer = await viewerOf(s, ctx);
      const page = await inbox.list({ ...s, viewer, pageSize: size, ...(afterId !== undefined ? { afterId } : {}) });
      const last = page.approvals[page.approvals.length - 1];
      return create(ListPendingApprovalsResponseSchema, {
        approvals: page.approvals.map((a) => toProto(s.organisation, a)),
        nextPageToken: page.more && last !== undefined ? encodeToken(last.request.id, s) : "",
      });
    },
    async countPendingApprovals(req, ctx) {
      const s = shapeOf(req);
      const viewer = await viewerOf(s, ctx);
      return create(CountPendingApprovalsResponseSchema, { count: await inbox.count({ ...s, viewer }) });
    },
  };
}
