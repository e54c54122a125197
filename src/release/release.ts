import type { ProjectRef } from "../policy/policy.js";

export interface ReleaseIntent {
  readonly id: string;
  readonly project: ProjectRef;
  readonly authorUserId: string;
  readonly authorUsername: string;
  /** Empty when not known. */
  readonly branch: string;
  readonly version: string;
  readonly createdAt: Date;
}

export type DeploymentStatus = "succeeded" | "failed";

export interface Deployment {
  readonly id: string;
  readonly project: ProjectRef;
  readonly environment: string;
  readonly releaseIntentId: string;
  readonly status: DeploymentStatus;
  readonly finishedAt: Date;
}

/** True when a re-registration carries the same content as the stored intent. */
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
