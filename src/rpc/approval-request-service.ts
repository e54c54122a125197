import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { COMMENT_MAX } from "../approval/rules.js";
import { effectiveRoleOf } from "../auth/access.js";
import { authorize } from "../auth/permissions.js";
import { requireEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError } from "../errors.js";
import {
  type ApprovalRequestService,
  CancelApprovalRequestResponseSchema,
  GetApprovalRequestResponseSchema,
  RequestApprovalResponseSchema,
} from "../gen/releasegate/v1/approval_request_pb.js";
import { requireProject, requireUuid } from "../policy/validate.js";
import { createCancelRequest } from "../requests/cancel-request.js";
import { createOpenRequest, type OpenRequestDeps } from "../requests/open-request.js";
import { createReadRequest } from "../requests/read-request.js";
import { approvalRequestToProto } from "./approval-request-convert.js";
import { accessOf } from "./context.js";

export type ApprovalRequestServiceDeps = OpenRequestDeps;

type RequestMethods = "requestApproval" | "getApprovalRequest" | "cancelApprovalRequest";

/** A cancel's optional reason: at most COMMENT_MAX characters; empty is none. */
function requireCancelReason(reason: string): string | undefined {
  if (reason === "") return undefined;
  if (reason.length > COMMENT_MAX)
    throw new InvalidArgumentError("reason", `must be at most ${COMMENT_MAX} characters (got ${reason.length})`);
  return reason;
}

/** releasegate.v1.ApprovalRequestService: open and read approval requests (the inbox RPCs live elsewhere). */
export function createApprovalRequestHandlers(
  deps: ApprovalRequestServiceDeps,
): Pick<ServiceImpl<typeof ApprovalRequestService>, RequestMethods> {
  const openRequest = createOpenRequest(deps);
  const readRequest = createReadRequest(deps);
  const cancelRequest = createCancelRequest(deps);
  return {
    async requestApproval(req, ctx) {
      const project = requireProject(req.project);
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      const environment = requireEnvironment(req.targetEnvironment, "target_environment");
      const access = accessOf(ctx);
      // Whoever may register intents may ask for their approval: pipelines and members.
      await authorize(access, project.organisation, "intent.register", { project: project.project, environment });
      const { request, created, view } = await openRequest({ caller: access.caller, project, intentId, environment });
      return create(RequestApprovalResponseSchema, {
        request: approvalRequestToProto(request, view.intent, view.newest?.id === request.id ? view.progress : undefined),
        created,
      });
    },
    async getApprovalRequest(req, ctx) {
      const project = requireProject(req.project);
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      const environment = requireEnvironment(req.targetEnvironment, "target_environment");
      await authorize(accessOf(ctx), project.organisation, "approval.read", { project: project.project, environment });
      const view = await readRequest({ project, intentId, environment });
      return create(GetApprovalRequestResponseSchema, {
        request: view.newest === undefined ? undefined : approvalRequestToProto(view.newest, view.intent, view.progress),
        earlier: view.earlier.map((r) => approvalRequestToProto(r, view.intent)),
      });
    },
    async cancelApprovalRequest(req, ctx) {
      const project = requireProject(req.project);
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      const environment = requireEnvironment(req.targetEnvironment, "target_environment");
      const reason = requireCancelReason(req.reason);
      const access = accessOf(ctx);
      // Any role in the organisation gets this far; the use case lets only the author, the registrant or an admin cancel.
      await authorize(access, project.organisation, "intent.read", { project: project.project, environment });
      const callerIsOrgAdmin = (await effectiveRoleOf(access, project.organisation)) === "admin";
      const { request, intent } = await cancelRequest({
        caller: access.caller,
        callerIsOrgAdmin,
        project,
        intentId,
        environment,
        ...(reason !== undefined ? { reason } : {}),
      });
      return create(CancelApprovalRequestResponseSchema, { request: approvalRequestToProto(request, intent) });
    },
  };
}
