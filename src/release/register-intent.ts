import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import { isAdmin } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import { insertIntentIfAbsent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { AlreadyExistsError, isRetryableDbError, PermissionDeniedError } from "../errors.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { type ReleaseIntent, sameIntentContent } from "./release.js";
import { type Supersession, supersedeOlderRequests, supersedePolicies } from "./supersede.js";

/** Attempts of a superseding registration that hit a serialization failure or deadlock. */
const REGISTER_ATTEMPTS = 3;

async function withRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (!isRetryableDbError(err) || attempt >= REGISTER_ATTEMPTS) throw err;
    }
  }
}

export interface RegisterIntentDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
  /** JetStream subject prefix events are addressed to (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Called after a registration committed outbox events (wakes the in-process relay). */
  readonly onOutboxCommitted?: () => void;
  /** Called with what a committed registration superseded (metrics). */
  readonly onSuperseded?: (project: ProjectRef, supersessions: readonly Supersession[]) => void;
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
 * ALREADY_EXISTS. When the project has an enabled supersede-pending policy,
 * a new intent supersedes the older intents' pending approval requests in
 * the same transaction (src/release/supersede.ts); a repeated registration
 * supersedes nothing.
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
    const { policies } = await deps.loadProject(project);
    // Without a supersede policy, one statement and no transaction (the common case).
    const { intent, created, supersessions } =
      supersedePolicies(policies).length === 0
        ? { ...(await insertIntentIfAbsent(deps.db, candidate)), supersessions: [] }
        : await withRetry(() =>
            deps.db.transaction().execute(async (trx) => {
              const inserted = await insertIntentIfAbsent(trx, candidate);
              if (!inserted.created) return { ...inserted, supersessions: [] };
              const supersessions = await supersedeOlderRequests(trx, {
                project,
                newerIntentId: inserted.intent.id,
                policies,
                now: candidate.createdAt,
                subjectPrefix: deps.subjectPrefix,
              });
              return { ...inserted, supersessions };
            }),
          );
    if (supersessions.length > 0) {
      deps.onOutboxCommitted?.();
      deps.onSuperseded?.(project, supersessions);
    }
    if (!created && !sameIntentContent(intent, candidate))
      throw new AlreadyExistsError(`release intent ${cmd.id} is already registered with different content`);
    return { intent, created };
  };
}
