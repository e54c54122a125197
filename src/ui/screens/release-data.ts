import type { ExternalApprovalState, Policy, PolicyEvaluation } from "../../gen/forest/v1/policy_pb.js";
import type { ApprovalHistoryEntry } from "../../gen/releasegate/v1/approval_pb.js";
import type { ApprovalRequest } from "../../gen/releasegate/v1/approval_request_pb.js";
import type { ApprovalRuleProgress } from "../../gen/releasegate/v1/approval_rules_pb.js";
import type { ReleaseIntent } from "../../gen/releasegate/v1/release_pb.js";
import { type Api, isUnimplemented } from "../api.js";

export interface ProjectRef {
  readonly organisation: string;
  readonly project: string;
}

/** What the release page shows for one target environment. */
export interface EnvironmentView {
  readonly environment: string;
  readonly allPassed: boolean;
  readonly evaluations: readonly PolicyEvaluation[];
  /** True when an enabled external approval policy gates it (votes make sense). */
  readonly gatedByApproval: boolean;
  /** The approval state of the first approval policy (votes, break-glass). */
  readonly approval?: ExternalApprovalState;
  readonly rules: readonly ApprovalRuleProgress[];
  /** The approval request and the ones before it; "unavailable" while the server does not offer requests. */
  readonly request: { readonly current?: ApprovalRequest; readonly earlier: readonly ApprovalRequest[] } | "unavailable";
}

export interface ReleaseView {
  readonly intent: ReleaseIntent;
  readonly environments: readonly EnvironmentView[];
  readonly history: readonly ApprovalHistoryEntry[];
}

/** The environment a policy gates (every kind names one). */
export function targetOf(p: Policy): string | undefined {
  const c = p.config;
  return c.case === undefined ? undefined : c.value.targetEnvironment;
}

/** Environments with at least one policy, in the order the policies list them. */
export function environmentsOf(policies: readonly Policy[]): string[] {
  return [...new Set(policies.map(targetOf).filter((e): e is string => e !== undefined && e !== ""))];
}

async function environmentView(
  api: Api,
  project: ProjectRef,
  intent: ReleaseIntent,
  environment: string,
  policies: readonly Policy[],
): Promise<EnvironmentView> {
  const gatedByApproval = policies.some(
    (p) => p.enabled && p.config.case === "externalApproval" && targetOf(p) === environment,
  );
  const key = { project, releaseIntentId: intent.releaseIntentId, targetEnvironment: environment };
  const [evaluation, eligible, request] = await Promise.all([
    api.policy.evaluatePolicies({
      project,
      targetEnvironment: environment,
      releaseIntentId: intent.releaseIntentId,
      ...(intent.branch === "" ? {} : { branch: intent.branch }),
    }),
    gatedByApproval ? api.query.listEligibleApprovers(key) : Promise.resolve({ rules: [] }),
    gatedByApproval
      ? api.requests.getApprovalRequest(key).then(
          (r) => ({ current: r.request, earlier: r.earlier }),
          (err: unknown) => {
            if (isUnimplemented(err)) return "unavailable" as const;
            throw err;
          },
        )
      : Promise.resolve({ earlier: [] }),
  ]);
  return {
    environment,
    allPassed: evaluation.allPassed,
    evaluations: evaluation.evaluations,
    gatedByApproval,
    approval: evaluation.evaluations.find((e) => e.externalApprovalState !== undefined)?.externalApprovalState,
    rules: eligible.rules,
    request,
  };
}

/** Everything the release page shows, read through the API in parallel. */
export async function loadRelease(api: Api, project: ProjectRef, releaseIntentId: string): Promise<ReleaseView> {
  const [{ releaseIntent }, { policies }, history] = await Promise.all([
    api.release.getReleaseIntent({ project, releaseIntentId }),
    api.policy.listPolicies({ project }),
    api.audit.listApprovalHistory({ project, releaseIntentId, pageSize: 200 }),
  ]);
  if (releaseIntent === undefined) throw new Error(`release intent ${releaseIntentId} not found`);
  const environments = await Promise.all(
    environmentsOf(policies).map((env) => environmentView(api, project, releaseIntent, env, policies)),
  );
  return { intent: releaseIntent, environments, history: history.entries };
}
