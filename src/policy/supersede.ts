import type { SupersedePendingConfig } from "./policy.js";

/**
 * What a supersede-pending policy judges, read for the evaluated release
 * intent only when such a policy applies (src/db/supersede.repository.ts).
 *
 * "Newer" is the order of registration (`registered_seq`, drawn by the
 * database when the intent is inserted): total, the same on every replica,
 * and right even when two registrations share a clock instant.
 */
export interface SupersedeFacts {
  /** The evaluated intent's branch ("" when it has none). */
  readonly branch: string;
  /** True when the intent has a successful deployment to the target environment: it is no longer pending there. */
  readonly deployedToTarget: boolean;
  /** The first intent of the project registered after it, if any. */
  readonly newerInProject?: string;
  /** The first intent of the project on the same branch registered after it, if any (only read for a branch). */
  readonly newerOnBranch?: string;
}

export interface SupersedeVerdict {
  readonly passed: boolean;
  readonly reason: string;
}

/**
 * Forest's supersede rule, decided in the answer: releasegate has no
 * scheduler that would pick the newest candidate, so an older intent that a
 * newer one superseded does not pass. The newest intent never is
 * superseded, nor one already deployed to the environment, nor (with
 * `sameBranchOnly`) one without a branch.
 */
export function judgeSupersede(
  policyName: string,
  c: SupersedePendingConfig,
  releaseIntentId: string | undefined,
  facts: SupersedeFacts | undefined,
): SupersedeVerdict {
  if (releaseIntentId === undefined || facts === undefined)
    return { passed: true, reason: "nothing to supersede: no release intent given (pass release_intent_id to judge one)" };
  if (facts.deployedToTarget)
    return {
      passed: true,
      reason: `not superseded: release ${releaseIntentId} is already deployed to ${c.targetEnvironment}`,
    };
  if (c.sameBranchOnly) {
    if (facts.branch === "")
      return {
        passed: true,
        reason: `not superseded: release ${releaseIntentId} has no branch, and only a newer release on the same branch supersedes`,
      };
    return facts.newerOnBranch === undefined
      ? { passed: true, reason: `not superseded: no newer release on branch ${facts.branch}` }
      : superseded(facts.newerOnBranch, policyName);
  }
  return facts.newerInProject === undefined
    ? { passed: true, reason: "not superseded: no newer release of the project" }
    : superseded(facts.newerInProject, policyName);
}

function superseded(newer: string, policyName: string): SupersedeVerdict {
  return { passed: false, reason: supersededReason(newer, policyName) };
}

/** The one wording of a supersession: in evaluations, on the request and in its event. */
export function supersededReason(newerIntentId: string, policyName: string): string {
  return `superseded by ${newerIntentId} (policy '${policyName}')`;
}
