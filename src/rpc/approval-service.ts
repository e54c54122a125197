import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type CastVoteDeps, createCastVote } from "../approval/cast-vote.js";
import { createReadApprovalState } from "../approval/read-approval-state.js";
import { authorizeBypass, COMMENT_MAX } from "../approval/rules.js";
import type { Decision } from "../approval/vote.js";
import { callerAt } from "../auth/access.js";
import { authorize, isAdmin } from "../auth/permissions.js";
import { requireEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError } from "../errors.js";
import {
  ExternalApproveReleaseResponseSchema,
  ExternalRejectReleaseResponseSchema,
  GetExternalApprovalStateResponseSchema,
  type PolicyService,
} from "../gen/forest/v1/policy_pb.js";
import { requireProject, requireUuid } from "../policy/validate.js";
import { accessOf } from "./context.js";
import { approvalStateToProto } from "./convert.js";

export type ApprovalServiceDeps = CastVoteDeps;

type ApprovalMethods =
  | "externalApproveRelease"
  | "externalRejectRelease"
  | "getExternalApprovalState"
  | "approveRelease"
  | "rejectRelease"
  | "getApprovalState";

interface VoteRequest {
  project?: { organisation: string; project: string };
  releaseIntentId: string;
  targetEnvironment: string;
  comment?: string;
  forceBypass?: boolean;
}

function requireComment(comment: string | undefined): string | undefined {
  if (comment === undefined || comment === "") return undefined;
  if (comment.length > COMMENT_MAX)
    throw new InvalidArgumentError("comment", `must be at most ${COMMENT_MAX} characters (got ${comment.length})`);
  return comment;
}

/** Shortest reason a bypass (or a break-glass) needs, in characters after trimming. */
export const BYPASS_REASON_MIN = 10;

/** A bypass is loud in the audit: it needs a written reason (a shape check, before authorisation). */
function requireBypassReason(forceBypass: boolean, comment: string | undefined): void {
  if (forceBypass && (comment ?? "").trim().length < BYPASS_REASON_MIN)
    throw new InvalidArgumentError("comment", `a bypass needs a reason (at least ${BYPASS_REASON_MIN} characters)`);
}

/**
 * The approval RPCs of forest.v1.PolicyService, each under both its Forest
 * name and its short alias (one implementation). Vote responses show the
 * strictest enabled approval policy for the environment (highest
 * required_approvals), which passes exactly when all of them pass.
 */
export function createApprovalHandlers(deps: ApprovalServiceDeps): Pick<ServiceImpl<typeof PolicyService>, ApprovalMethods> {
  const castVote = createCastVote(deps);
  const readState = createReadApprovalState(deps);

  async function vote(req: VoteRequest, decision: Decision, ctx: HandlerContext) {
    const project = requireProject(req.project);
    const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
    const environment = requireEnvironment(req.targetEnvironment, "target_environment");
    const comment = requireComment(req.comment);
    const forceBypass = req.forceBypass ?? false;
    requireBypassReason(forceBypass, comment);
    const access = accessOf(ctx);
    const at = { project: project.project, environment };
    await authorize(access, project.organisation, "approval.vote", at);
    // The voter as seen here: an admin grant on this project lets force_bypass through.
    const caller = await callerAt(access, project.organisation, at);
    authorizeBypass({ forceBypass, voterId: caller.userId, voterIsAdmin: isAdmin(caller, project.organisation) });
    const { strictest, request } = await castVote({
      caller,
      decision,
      forceBypass,
      project,
      intentId,
      environment,
      comment,
      tokenRole: access.caller.orgRoles.get(project.organisation),
    });
    return approvalStateToProto(strictest, request);
  }

  const approve: ServiceImpl<typeof PolicyService>["externalApproveRelease"] = async (req, ctx) =>
    create(ExternalApproveReleaseResponseSchema, { state: await vote(req, "approved", ctx) });

  const reject: ServiceImpl<typeof PolicyService>["externalRejectRelease"] = async (req, ctx) =>
    create(ExternalRejectReleaseResponseSchema, { state: await vote(req, "rejected", ctx) });

  const getState: ServiceImpl<typeof PolicyService>["getExternalApprovalState"] = async (req, ctx) => {
    const project = requireProject(req.project);
    const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
    const environment = requireEnvironment(req.targetEnvironment, "target_environment");
    await authorize(accessOf(ctx), project.organisation, "approval.read", { project: project.project, environment });
    const { strictest, request } = await readState({ project, intentId, environment });
    return create(GetExternalApprovalStateResponseSchema, { state: approvalStateToProto(strictest, request) });
  };

  return {
    externalApproveRelease: approve,
    externalRejectRelease: reject,
    getExternalApprovalState: getState,
    approveRelease: approve,
    rejectRelease: reject,
    getApprovalState: getState,
  };
}
