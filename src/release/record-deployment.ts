import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import { findIntent, insertDeployment } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import { InvalidArgumentError } from "../errors.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { type Deployment, type DeploymentStatus, intentNotFound } from "./release.js";

/** How far in the future a pipeline's `finished_at` may lie (clock skew), in ms. */
export const FINISHED_AT_SKEW_MS = 60_000;

/**
 * A finish time more than the clock skew ahead of the server's clock is a
 * malformed report (it would also let a soak look older than it is), judged
 * with the request's shape, before authorisation.
 */
export function requireFinishedAtNotAhead(finishedAt: Date, now: Date): Date {
  if (finishedAt.getTime() > now.getTime() + FINISHED_AT_SKEW_MS)
    throw new InvalidArgumentError("finished_at", `must not be more than ${FINISHED_AT_SKEW_MS / 1000}s in the future`);
  return finishedAt;
}

export interface RecordDeploymentDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
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

/**
 * Records a deployment's outcome for an intent of the project
 * (FAILED_PRECONDITION for an undeclared environment, NOT_FOUND for another
 * project's intent). `finished_at` is the pipeline's report: it may
 * not lie before the intent's registration or more than the clock skew in
 * the future, and soak time never counts from it but from `recorded_at`.
 */
export function createRecordDeployment(deps: RecordDeploymentDeps): (cmd: RecordDeploymentCommand) => Promise<Deployment> {
  const { db, clock } = deps;
  return async (cmd) => {
    const now = clock.now();
    const finishedAt = requireFinishedAtNotAhead(cmd.finishedAt ?? now, now);
    requireDeclared((await deps.loadProject(cmd.project)).environments, cmd.environment, "environment", cmd.project);
    const intent = await findIntent(db, cmd.project, cmd.intentId);
    if (intent === undefined) throw intentNotFound(cmd.project, cmd.intentId);
    if (finishedAt.getTime() < intent.createdAt.getTime())
      // A release cannot have been deployed before it was registered: a backdated report.
      throw new InvalidArgumentError(
        "finished_at",
        `${finishedAt.toISOString()} is before release intent ${intent.id} was registered (${intent.createdAt.toISOString()})`,
      );
    return insertDeployment(db, {
      project: cmd.project,
      environment: cmd.environment,
      releaseIntentId: cmd.intentId,
      status: cmd.status,
      finishedAt,
      // Soak time counts from here, the server's clock, whatever the pipeline reported.
      recordedAt: now,
    });
  };
}
