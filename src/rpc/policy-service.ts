import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { authorize } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import { readEvaluationRows } from "../db/evaluation.repository.js";
import * as policies from "../db/policy.repository.js";
import type { DB } from "../db/schema.js";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.js";
import {
  CreatePolicyResponseSchema,
  DeletePolicyResponseSchema,
  EvaluatePoliciesResponseSchema,
  ListPoliciesResponseSchema,
  type PolicyService,
  UpdatePolicyResponseSchema,
} from "../gen/forest/v1/policy_pb.js";
import { applicablePolicies, evaluateApplicable } from "../policy/evaluate.js";
import { BRANCH_NAME_MAX, type Policy, type ProjectRef } from "../policy/policy.js";
import { requireName, requirePolicyName, requireProject, requireUuid } from "../policy/validate.js";
import { intentNotFound } from "../release/release.js";
import { callerOf } from "./context.js";
import { configFromProto, evaluationToProto, policyToProto, requireConfigMatchingType } from "./convert.js";

export interface PolicyServiceDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Called after a policy of `project` changed (cache invalidation). */
  readonly onPolicyChanged?: (project: ProjectRef) => void;
  /** Reads a project's policies; defaults to the database (lets a cache sit in front). */
  readonly loadPolicies?: (project: ProjectRef) => Promise<readonly Policy[]>;
}

/** Policy CRUD and evaluation of forest.v1.PolicyService (approval RPCs live elsewhere). */
export function createPolicyHandlers(
  deps: PolicyServiceDeps,
): Pick<
  ServiceImpl<typeof PolicyService>,
  "createPolicy" | "updatePolicy" | "deletePolicy" | "listPolicies" | "evaluatePolicies"
> {
  const { db, clock } = deps;
  const loadPolicies = deps.loadPolicies ?? ((project: ProjectRef) => policies.listPolicies(db, project));
  const changed = (project: ProjectRef) => deps.onPolicyChanged?.(project);

  return {
    async createPolicy(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "policy.write");
      const name = requirePolicyName(req.name);
      const config = requireConfigMatchingType(req.config, req.policyType);
      const now = clock.now();
      const policy = await policies
        .insertPolicy(db, { id: randomUUID(), project, name, enabled: true, config, createdAt: now, updatedAt: now })
        .catch((err: unknown) => {
          if ((err as { code?: string }).code === "23505")
            throw new AlreadyExistsError(
              `name: policy ${name} already exists in ${project.organisation}/${project.project}`,
              { cause: err },
            );
          throw err;
        });
      changed(project);
      return create(CreatePolicyResponseSchema, { policy: policyToProto(policy) });
    },

    async updatePolicy(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "policy.write");
      const name = requirePolicyName(req.name);
      const config = configFromProto(req.config);
      const policy = await policies.updatePolicy(db, project, name, {
        enabled: req.enabled,
        config,
        updatedAt: clock.now(),
      });
      if (policy === undefined) throw new NotFoundError(`policy ${name} not found in ${project.organisation}/${project.project}`);
      changed(project);
      return create(UpdatePolicyResponseSchema, { policy: policyToProto(policy) });
    },

    async deletePolicy(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "policy.write");
      const name = requirePolicyName(req.name);
      if (!(await policies.deletePolicy(db, project, name)))
        throw new NotFoundError(`policy ${name} not found in ${project.organisation}/${project.project}`);
      changed(project);
      return create(DeletePolicyResponseSchema, {});
    },

    async listPolicies(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "policy.read");
      const list = await policies.listPolicies(db, project);
      return create(ListPoliciesResponseSchema, { policies: list.map(policyToProto) });
    },

    async evaluatePolicies(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "policy.evaluate");
      const targetEnvironment = requireName(req.targetEnvironment, "target_environment");
      if (req.branch !== undefined && req.branch.length > BRANCH_NAME_MAX)
        throw new InvalidArgumentError("branch", `must be at most ${BRANCH_NAME_MAX} characters`);
      const intentId =
        req.releaseIntentId === undefined || req.releaseIntentId === ""
          ? undefined
          : requireUuid(req.releaseIntentId, "release_intent_id");
      const applicable = applicablePolicies(await loadPolicies(project), targetEnvironment);

      const sourceEnvironments = [
        ...new Set(applicable.flatMap((p) => (p.config.kind === "soak_time" ? [p.config.sourceEnvironment] : []))),
      ];
      const needsVotes = applicable.some((p) => p.config.kind === "external_approval");
      const { intent, lastSuccessfulDeploy, votes } = await readEvaluationRows(db, project, {
        releaseIntentId: intentId,
        sourceEnvironments,
        votesEnvironment: needsVotes ? targetEnvironment : undefined,
      });
      if (intentId !== undefined && intent === undefined)
        throw intentNotFound(project, intentId);
      const branch = req.branch !== undefined && req.branch !== "" ? req.branch : intent?.branch || undefined;
      const result = evaluateApplicable(applicable, {
        now: clock.now(),
        targetEnvironment,
        branch,
        releaseIntentId: intentId,
        lastSuccessfulDeploy,
        votes,
      });
      return create(EvaluatePoliciesResponseSchema, {
        evaluations: result.evaluations.map(evaluationToProto),
        allPassed: result.allPassed,
      });
    },
  };
}
