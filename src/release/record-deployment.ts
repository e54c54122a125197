import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import { findIntent, insertDeployment } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { InvalidArgumentError } from "../errors.js";
import type { ProjectRef } from "../policy/policy.js";
import { type Deployment, type DeploymentStatus, intentNotFound } from "./release.js";

/** How far in the future a pipeline's `finished_at` may lie (clock skew), in ms. */
export const FINISHED_AT_SKEW_MS = 60_000;

export interface RecordDeploymentDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
}

/** A validated, authorised RecordDeployment request. */
export interface RecordDeploymentCommand {
  readonly project: ProjectRef;
  readonly environment: string;
  readonly intentId: string;
  readonly status: DeploymentStatus;
  /** The pipeline's report; undefined: now. */
  readonly finishedAt?: Date;
}

/** Records a deployment's outcome for an intent of the project (NOT_FOUND for another project's intent). */
export function createRecordDeployment(deps: RecordDeploymentDeps): (cmd: RecordDeploymentCommand) => Promise<Deployment> {
  const { db, clock } = deps;
  return async (cmd) => {
    const now = clock.now();
    const finishedAt = cmd.finishedAt ?? now;
    if (finishedAt.getTime() > now.getTime() + FINISHED_AT_SKEW_MS)
      // A future finish time would let a soak pass early.
      throw new InvalidArgumentError("finished_at", `must not be more than ${FINISHED_AT_SKEW_MS / 1000}s in the future`);
    if ((await findIntent(db, cmd.project, cmd.intentId)) === undefined) throw intentNotFound(cmd.project, cmd.intentId);
    return insertDeployment(db, {
      project: cmd.project,
      environment: cmd.environment,
      releaseIntentId: cmd.intentId,
      status: cmd.status,
      finishedAt,
    });
  };
}
