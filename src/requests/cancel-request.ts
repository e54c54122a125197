import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import type { Clock } from "../clock.js";
import { findNewestRequest, finishRequest, lockIntent } from "../db/approval-request.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import { FailedPreconditionError, PermissionDeniedError } from "../errors.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound, type ReleaseIntent } from "../release/release.js";
import { type ApprovalRequest, asSeenAt, describeOutcome } from "./request-state.js";

export interface CancelRequestDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  readonly subjectPrefix: string;
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
  readonly onOutboxCommitted?: () => void;
}

/** A validated CancelApprovalRequest; `callerIsOrgAdmin` from the caller's effective organisation role. */
export interface CancelRequestCommand {
  readonly caller: Caller;
  readonly callerIsOrgAdmin: boolean;
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
  readonly reason?: string;
}

export interface CancelRequestOutcome {
  readonly request: ApprovalRequest;
  readonly intent: ReleaseIntent;
}

/** Who may cancel: the intent's author, whoever registered it (person or pipeline), or an organisation admin. */
function requireMayCancel(cmd: CancelRequestCommand, intent: ReleaseIntent): void {
  const id = cmd.caller.userId;
  if (cmd.callerIsOrgAdmin || id === intent.authorUserId || id === intent.registeredByUserId) return;
  throw new PermissionDeniedError(
    `${id} may not cancel the approval request of release intent ${intent.id}: only its author (${intent.authorUserId}), its registrant (${intent.registeredByUserId}) or an organisation admin may`,
  );
}

/**
 * CancelApprovalRequest: the pending request becomes `cancelled` (decided_by
 * the caller, reason theirs), with its history row and event.
 * PERMISSION_DENIED for anyone but the author, the registrant or an admin;
 * FAILED_PRECONDITION when nothing is pending (none opened, or the newest
 * is final, or due: expired, even if the reaper has not written it yet).
 */
export function createCancelRequest(deps: CancelRequestDeps): (cmd: CancelRequestCommand) => Promise<CancelRequestOutcome> {
  const { db, clock } = deps;
  return async (cmd) => {
    const { project, intentId, environment } = cmd;
    const { environments } = await deps.loadProject(project);
    requireDeclared(environments, environment, "target_environment", project);
    const intent = await findIntent(db, project, intentId);
    if (intent === undefined) throw intentNotFound(project, intentId);
    requireMayCancel(cmd, intent);
    const request = await db.transaction().execute(async (trx) => {
      await lockIntent(trx, intentId);
      const now = clock.now();
      const newest = await findNewestRequest(trx, intentId, environment);
      const nothing = `nothing to cancel for release intent ${intentId} in ${environment}`;
      if (newest === undefined)
        throw new FailedPreconditionError("target_environment", `${nothing}: no approval request was ever opened`);
      const seen = asSeenAt(newest, now);
      if (seen.state !== "pending")
        throw new FailedPreconditionError(
          "target_environment",
          `${nothing}: approval request ${seen.id} was ${describeOutcome(seen)}`,
        );
      const cancelled = await finishRequest(trx, {
        id: newest.id,
        to: "cancelled",
        actor: { userId: cmd.caller.userId, username: cmd.caller.username },
        decidedAt: now,
        ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}),
        subjectPrefix: deps.subjectPrefix,
      });
      if (cancelled === undefined)
        throw new FailedPreconditionError(
          "target_environment",
          `${nothing}: approval request ${newest.id} was decided while cancelling; read it with GetApprovalRequest`,
        );
      return cancelled;
    });
    deps.onOutboxCommitted?.();
    return { request, intent };
  };
}
