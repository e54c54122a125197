import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import {
  deleteProjectEnvironments,
  lockProjectRules,
  setProjectEnvironments,
} from "../db/environment.repository.js";
import { listPolicies } from "../db/policy.repository.js";
import type { DB } from "../db/schema.js";
import type { ProjectRef } from "../policy/policy.js";
import { requireNoOrphanedPolicies } from "./declared-environments.js";

export interface SetProjectEnvironmentsDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Called after the declaration of `project` changed (cache invalidation on this replica). */
  readonly onEnvironmentsChanged?: (project: ProjectRef) => void;
}

/** A validated, authorised SetProjectEnvironments request. */
export interface SetProjectEnvironmentsCommand {
  readonly project: ProjectRef;
  /** Folded, valid, distinct names in the admin's order; empty removes the declaration. */
  readonly environments: readonly string[];
  /** Token subject of the admin. */
  readonly updatedBy: string;
}

/**
 * Declares (or, with an empty list, undeclares) a project's environments.
 * FAILED_PRECONDITION, with nothing written, when an existing policy names
 * an environment the new list leaves out. Runs under the project's rules
 * lock, which policy writes take too, so the check cannot race a new policy.
 * Returns the stored list.
 */
export function createSetProjectEnvironments(
  deps: SetProjectEnvironmentsDeps,
): (cmd: SetProjectEnvironmentsCommand) => Promise<readonly string[]> {
  const { db, clock } = deps;
  return async ({ project, environments, updatedBy }) => {
    const stored = await db.transaction().execute(async (trx) => {
      await lockProjectRules(trx, project);
      if (environments.length === 0) {
        await deleteProjectEnvironments(trx, project);
        return [];
      }
      requireNoOrphanedPolicies(await listPolicies(trx, project), environments);
      return setProjectEnvironments(trx, project, { environments, updatedAt: clock.now(), updatedBy });
    });
    deps.onEnvironmentsChanged?.(project);
    return stored;
  };
}
