import type { Kysely } from "kysely";
import { getProjectEnvironments } from "../db/environment.repository.js";
import type { DB } from "../db/schema.js";
import type { ProjectRef } from "../policy/policy.js";
import type { DeclaredEnvironments } from "./declared-environments.js";

export interface ReadProjectEnvironmentsDeps {
  readonly db: Kysely<DB>;
}

/**
 * A project's declared environments from the source of truth (not the
 * cache: an admin who just declared them reads what they wrote).
 */
export function createReadProjectEnvironments(
  deps: ReadProjectEnvironmentsDeps,
): (project: ProjectRef) => Promise<DeclaredEnvironments> {
  return (project) => getProjectEnvironments(deps.db, project);
}
