import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { authorize } from "../auth/permissions.js";
import { requireEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError } from "../errors.js";
import {
  CreatePolicyResponseSchema,
  DeletePolicyResponseSchema,
  EvaluatePoliciesResponseSchema,
  ListPoliciesResponseSchema,
  type PolicyService,
  UpdatePolicyResponseSchema,
} from "../gen/forest/v1/policy_pb.js";
import { createEvaluateRelease, type EvaluateReleaseDeps } from "../policy/evaluate-release.js";
import { createManagePolicies, type ManagePoliciesDeps } from "../policy/manage-policies.js";
import { BRANCH_NAME_MAX } from "../policy/policy.js";
import { requirePolicyName, requireProject, requireUuid } from "../policy/validate.js";
import { accessOf } from "./context.js";
import { configFromProto, evaluationToProto, policyToProto, requireConfigMatchingType } from "./convert.js";

export type PolicyServiceDeps = EvaluateReleaseDeps & ManagePoliciesDeps;

/** Policy CRUD and evaluation of forest.v1.PolicyService (approval RPCs live elsewhere). */
export function createPolicyHandlers(
  deps: PolicyServiceDeps,
): Pick<
  ServiceImpl<typeof PolicyService>,
  "createPolicy" | "updatePolicy" | "deletePolicy" | "listPolicies" | "evaluatePolicies"
> {
  const manage = createManagePolicies(deps);
  const evaluate = createEvaluateRelease(deps);

  return {
    async createPolicy(req, ctx) {
      const project = requireProject(req.project);
      const name = requirePolicyName(req.name);
      const config = requireConfigMatchingType(req.config, req.policyType);
      await authorize(accessOf(ctx), project.organisation, "policy.write", { project: project.project });
      const policy = await manage.create(project, name, config);
      return create(CreatePolicyResponseSchema, { policy: policyToProto(policy) });
    },

    async updatePolicy(req, ctx) {
      const project = requireProject(req.project);
      const name = requirePolicyName(req.name);
      const config = configFromProto(req.config);
      await authorize(accessOf(ctx), project.organisation, "policy.write", { project: project.project });
      const policy = await manage.update(project, name, { enabled: req.enabled, config });
      return create(UpdatePolicyResponseSchema, { policy: policyToProto(policy) });
    },

    async deletePolicy(req, ctx) {
      const project = requireProject(req.project);
      const name = requirePolicyName(req.name);
      await authorize(accessOf(ctx), project.organisation, "policy.write", { project: project.project });
      await manage.delete(project, name);
      return create(DeletePolicyResponseSchema, {});
    },

    async listPolicies(req, ctx) {
      const project = requireProject(req.project);
      await authorize(accessOf(ctx), project.organisation, "policy.read", { project: project.project });
      const list = await manage.list(project);
      return create(ListPoliciesResponseSchema, { policies: list.map(policyToProto) });
    },

    async evaluatePolicies(req, ctx) {
      const project = requireProject(req.project);
      const targetEnvironment = requireEnvironment(req.targetEnvironment, "target_environment");
      if (req.branch !== undefined && req.branch.length > BRANCH_NAME_MAX)
        throw new InvalidArgumentError("branch", `must be at most ${BRANCH_NAME_MAX} characters`);
      const intentId =
        req.releaseIntentId === undefined || req.releaseIntentId === ""
          ? undefined
          : requireUuid(req.releaseIntentId, "release_intent_id");
      const access = accessOf(ctx);
      await authorize(access, project.organisation, "policy.evaluate", {
        project: project.project,
        environment: targetEnvironment,
      });
      const { userId, username, actorType } = access.caller;
      const result = await evaluate({ project, targetEnvironment, branch: req.branch, intentId, caller: { userId, username, actorType } });
      return create(EvaluatePoliciesResponseSchema, {
        evaluations: result.evaluations.map((e) => evaluationToProto(e, result.request)),
        allPassed: result.allPassed,
      });
    },
  };
}
