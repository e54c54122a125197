import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import { isAdmin } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import { insertIntentIfAbsent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { AlreadyExistsError, PermissionDeniedError } from "../errors.js";
import type { ProjectRef } from "../policy/policy.js";
import { type ReleaseIntent, sameIntentContent } from "./release.js";

export interface RegisterIntentDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
}

/** A validated, authorised RegisterReleaseIntent request ("" = not given). */
export interface RegisterIntentCommand {
  readonly caller: Caller;
  readonly project: ProjectRef;
  readonly id: string;
  readonly authorUserId: string;
  readonly authorUsername: string;
  readonly branch: string;
  readonly version: string;
}

/**
 * Registers a release intent, idempotently: the same id with the same content
 * answers the stored intent (`created: false`), with other content
 * ALREADY_EXISTS.
 */
export function createRegisterIntent(
  deps: RegisterIntentDeps,
): (cmd: RegisterIntentCommand) => Promise<{ intent: ReleaseIntent; created: boolean }> {
  return async (cmd) => {
    const { caller, project } = cmd;
    // The author is who approval's four-eyes rule checks against: default to
    // the caller. Only pipelines and admins register on someone's behalf, or
    // a member could name another author and then approve their own release.
    if (
      cmd.authorUserId !== "" &&
      cmd.authorUserId !== caller.userId &&
      caller.actorType !== "service" &&
      !isAdmin(caller, project.organisation)
    )
      throw new PermissionDeniedError(
        `author_user_id: member ${caller.userId} may register release intents only as themselves (service accounts and admins may name another author)`,
      );
    const authorUserId = cmd.authorUserId === "" ? caller.userId : cmd.authorUserId;
    const authorUsername =
      cmd.authorUsername !== "" ? cmd.authorUsername : authorUserId === caller.userId ? caller.username : authorUserId;
    const candidate: ReleaseIntent = {
      id: cmd.id,
      project,
      authorUserId,
      authorUsername,
      branch: cmd.branch,
      version: cmd.version,
      createdAt: deps.clock.now(),
      registeredByUserId: caller.userId,
      registeredByActorType: caller.actorType,
    };
    const { intent, created } = await insertIntentIfAbsent(deps.db, candidate);
    if (!created && !sameIntentContent(intent, candidate))
      throw new AlreadyExistsError(`release intent ${cmd.id} is already registered with different content`);
    return { intent, created };
  };
}
