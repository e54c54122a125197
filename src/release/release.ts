import type { ActorType } from "../auth/caller.js";
import { NotFoundError } from "../errors.js";
import type { ProjectRef } from "../policy/policy.js";

export interface ReleaseIntent {
  readonly id: string;
  readonly project: ProjectRef;
  readonly authorUserId: string;
  readonly authorUsername: string;
  /** Empty when not known. */
  readonly branch: string;
  readonly version: string;
  /** When releasegate registered it (server clock). */
  readonly createdAt: Date;
  /** Token subject of whoever registered it (the author, a pipeline, or someone on the author's behalf). */
  readonly registeredByUserId: string;
  readonly registeredByActorType: ActorType;
}

export type DeploymentStatus = "succeeded" | "failed";

export interface Deployment {
  readonly id: string;
  readonly project: ProjectRef;
  readonly environment: string;
  readonly releaseIntentId: string;
  readonly status: DeploymentStatus;
  /** The pipeline's report of when it finished (kept, never trusted for soak time). */
  readonly finishedAt: Date;
  /** When releasegate recorded it (server clock): soak time counts from here. */
  readonly recordedAt: Date;
}

/** True when a re-registration carries the same content as the stored intent (who registered it is not content). */
export function sameIntentContent(a: ReleaseIntent, b: ReleaseIntent): boolean {
  return (
    a.project.organisation === b.project.organisation &&
    a.project.project === b.project.project &&
    a.authorUserId === b.authorUserId &&
    a.authorUsername === b.authorUsername &&
    a.branch === b.branch &&
    a.version === b.version
  );
}

/** NOT_FOUND for an intent that does not exist in `project` (another project's counts as unknown). */
export function intentNotFound(project: ProjectRef, id: string): NotFoundError {
  return new NotFoundError(
    `release_intent_id: release intent ${id} not found in ${project.organisation}/${project.project}`,
  );
}
