import type { Kysely } from "kysely";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import type { ProjectRef } from "../policy/policy.js";
import { intentNotFound, type ReleaseIntent } from "./release.js";

/** Reads one intent of the project; NOT_FOUND when it is unknown there. */
export function createReadIntent(deps: { readonly db: Kysely<DB> }): (project: ProjectRef, id: string) => Promise<ReleaseIntent> {
  return async (project, id) => {
    const intent = await findIntent(deps.db, project, id);
    if (intent === undefined) throw intentNotFound(project, id);
    return intent;
  };
}
