import { create } from "@bufbuild/protobuf";
import type { GateState } from "../approval/rules.js";
import {
  type ApprovalRequest as ApprovalRequestMsg,
  ApprovalRequestSchema,
  ApprovalRequestState,
} from "../gen/releasegate/v1/approval_request_pb.js";
import type { ReleaseIntent } from "../release/release.js";
import type { ApprovalRequest, RequestState } from "../requests/request-state.js";
import { rfc3339, ruleProgressToProto } from "./convert.js";

const STATE_TO_PROTO: Record<RequestState, ApprovalRequestState> = {
  pending: ApprovalRequestState.PENDING,
  approved: ApprovalRequestState.APPROVED,
  rejected: ApprovalRequestState.REJECTED,
  expired: ApprovalRequestState.EXPIRED,
  superseded: ApprovalRequestState.SUPERSEDED,
  cancelled: ApprovalRequestState.CANCELLED,
};

export function requestStateToProto(s: RequestState | undefined): ApprovalRequestState {
  return s === undefined ? ApprovalRequestState.UNSPECIFIED : STATE_TO_PROTO[s];
}

/** A request on the wire, with its intent's author, branch and version and (when known) its progress. */
export function approvalRequestToProto(r: ApprovalRequest, intent: ReleaseIntent, progress?: GateState): ApprovalRequestMsg {
  return create(ApprovalRequestSchema, {
    id: r.id,
    project: { organisation: r.organisation, project: r.project },
    releaseIntentId: r.releaseIntentId,
    targetEnvironment: r.environment,
    state: STATE_TO_PROTO[r.state],
    requestedBy: r.requestedByUserId,
    requestedByActorType: r.requestedByActorType,
    openedBy: r.openedBy,
    requestedAt: rfc3339(r.requestedAt),
    expiresAt: r.expiresAt === undefined ? "" : rfc3339(r.expiresAt),
    decidedAt: r.decidedAt === undefined ? "" : rfc3339(r.decidedAt),
    decidedBy: r.decidedBy ?? "",
    reason: r.reason ?? "",
    supersededBy: r.supersededBy ?? "",
    authorUserId: intent.authorUserId,
    branch: intent.branch,
    version: intent.version,
    currentApprovals: progress?.strictest.currentApprovals ?? 0,
    requiredApprovals: progress?.strictest.requiredApprovals ?? 0,
    ruleProgress: (progress?.strictest.ruleProgress ?? []).map(ruleProgressToProto),
  });
}
