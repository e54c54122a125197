import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type BreakGlassDeps, createBreakGlass } from "../approval/break-glass.js";
import { requireBreakGlassReason } from "../approval/break-glass-mark.js";
import { authorize } from "../auth/permissions.js";
import { requireEnvironment } from "../environment/environment-name.js";
import { BreakGlassResponseSchema, type BreakGlassService } from "../gen/releasegate/v1/break_glass_pb.js";
import { requireProject, requireUuid } from "../policy/validate.js";
import { accessOf } from "./context.js";
import { rfc3339 } from "./convert.js";

export type BreakGlassServiceDeps = BreakGlassDeps;

/** releasegate.v1.BreakGlassService: an organisation admin opens one intent's approval gate, with a reason. */
export function createBreakGlassHandlers(deps: BreakGlassServiceDeps): ServiceImpl<typeof BreakGlassService> {
  const breakGlass = createBreakGlass(deps);
  return {
    async breakGlass(req, ctx) {
      const project = requireProject(req.project);
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      const environment = requireEnvironment(req.targetEnvironment, "target_environment");
      const reason = requireBreakGlassReason(req.reason);
      const access = accessOf(ctx);
      // Organisation admins only: the effective role at organisation scope (a project grant is not enough).
      await authorize(access, project.organisation, "approval.break_glass");
      const caller = access.caller;
      const outcome = await breakGlass({ caller, project, intentId, environment, reason });
      return create(BreakGlassResponseSchema, { recordedAt: rfc3339(outcome.recordedAt), eventId: outcome.eventId });
    },
  };
}
