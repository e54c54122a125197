import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createListEligibleApprovers, type ListEligibleApproversDeps } from "../approval/list-eligible-approvers.js";
import { authorize } from "../auth/permissions.js";
import { requireEnvironment } from "../environment/environment-name.js";
import { type ApprovalQueryService, ListEligibleApproversResponseSchema } from "../gen/releasegate/v1/approval_query_pb.js";
import { requireProject, requireUuid } from "../policy/validate.js";
import { accessOf } from "./context.js";
import { ruleProgressToProto } from "./convert.js";

/** releasegate.v1.ApprovalQueryService: who may approve an intent for an environment (any role, viewers too). */
export function createApprovalQueryHandlers(deps: ListEligibleApproversDeps): ServiceImpl<typeof ApprovalQueryService> {
  const list = createListEligibleApprovers(deps);
  return {
    async listEligibleApprovers(req, ctx) {
      const project = requireProject(req.project);
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      const environment = requireEnvironment(req.targetEnvironment, "target_environment");
      await authorize(accessOf(ctx), project.organisation, "approval.read", { project: project.project, environment });
      const rules = await list({ project, intentId, environment });
      return create(ListEligibleApproversResponseSchema, { rules: rules.map(ruleProgressToProto) });
    },
  };
}
