import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import type { Clock } from "../clock.js";
import { lockVoteBasis } from "../db/approval.repository.js";
import { finishRequest } from "../db/approval-request.repository.js";
import { writeBreakGlass } from "../db/break-glass.repository.js";
import { outboxInsertFor } from "../db/outbox.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import { FailedPreconditionError, isRetryableDbError } from "../errors.js";
import type { Policy, ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
import { asSeenAt } from "../requests/request-state.js";
import { approvalSubject } from "../signal/subject.js";
import type { BreakGlassMark } from "./break-glass-mark.js";
import { APPROVAL_BREAK_GLASS, type ApprovalDecidedEvent } from "./event.js";
import { approvalPoliciesFor, type GateState, gateState } from "./rules.js";

/** Attempts of the break-glass transaction that hit a serialization failure or deadlock. */
const BREAK_GLASS_ATTEMPTS = 3;

export interface BreakGlassDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** JetStream subject prefix events are addressed to (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
  /** Called after a break-glass committed its outbox event (wakes the in-process relay). */
  readonly onOutboxCommitted?: () => void;
  /** Called once per committed break-glass (metrics). */
  readonly onBrokenGlass?: (project: ProjectRef, environment: string) => void;
}

/** A validated, authorised (organisation admin) break-glass request. */
export interface BreakGlassCommand {
  readonly caller: Caller;
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
  /** Validated by `requireBreakGlassReason`. */
  readonly reason: string;
}

export interface BreakGlassOutcome {
  readonly recordedAt: Date;
  readonly eventId: string;
  /** The approval gate after it (passed). */
  readonly state: GateState;
}

/**
 * The break-glass use case: opens every approval policy of one intent and
 * environment. Under the intent row lock (so no vote decided concurrently
 * misses it), it checks the intent is in the project (NOT_FOUND) and that
 * the environment has an enabled approval policy (FAILED_PRECONDITION: there
 * is nothing to break), then records it with its history row and its
 * `approval.break_glass` outbox event in one statement.
 */
export function createBreakGlass(deps: BreakGlassDeps): (cmd: BreakGlassCommand) => Promise<BreakGlassOutcome> {
  const { db, clock } = deps;

  async function once(cmd: BreakGlassCommand, policies: readonly Policy[]): Promise<BreakGlassOutcome> {
    const { caller, project, intentId, environment, reason } = cmd;
    return db.transaction().execute(async (trx) => {
      const basis = await lockVoteBasis(trx, project, intentId, environment);
      if (basis === undefined) throw intentNotFound(project, intentId);
      const gate = approvalPoliciesFor(policies, environment);
      if (gate.length === 0)
        throw new FailedPreconditionError(
          "target_environment",
          `nothing to break: no enabled external approval policy for ${environment} in ${project.organisation}/${project.project}`,
        );
      const mark: BreakGlassMark = { userId: caller.userId, username: caller.username, reason, recordedAt: clock.now() };
      const state = gateState(gate, basis.votes, undefined, mark);
      const event: ApprovalDecidedEvent = {
        event_id: randomUUID(),
        kind: APPROVAL_BREAK_GLASS,
        organisation: project.organisation,
        project: project.project,
        environment,
        release_intent_id: intentId,
        voter_user_id: caller.userId,
        voter_username: caller.username,
        decision: "approved",
        decision_kind: "break_glass",
        current_approvals: state.strictest.currentApprovals,
        required_approvals: state.strictest.requiredApprovals,
        passed: state.passed,
        decided_at: mark.recordedAt.toISOString(),
        reason,
      };
      const subject = approvalSubject(deps.subjectPrefix, project.organisation, project.project, environment);
      const written = await writeBreakGlass(trx, {
        project,
        releaseIntentId: intentId,
        environment,
        mark,
        outbox: outboxInsertFor(event, subject),
      });
      // The intent row is locked by us: it cannot have gone.
      if (!written) throw new Error("release intent vanished under its row lock");
      // The gate is open: its pending request (if any, and not past its expiry) is approved by the admin.
      const request = basis.request === undefined ? undefined : asSeenAt(basis.request, mark.recordedAt);
      if (request?.state === "pending")
        await finishRequest(trx, {
          id: request.id,
          to: "approved",
          actor: { userId: caller.userId, username: caller.username },
          decidedAt: mark.recordedAt,
          reason,
          counts: { currentApprovals: state.strictest.currentApprovals, requiredApprovals: state.strictest.requiredApprovals },
          subjectPrefix: deps.subjectPrefix,
        });
      return { recordedAt: mark.recordedAt, eventId: event.event_id, state };
    });
  }

  return async function breakGlass(cmd: BreakGlassCommand): Promise<BreakGlassOutcome> {
    const { policies, environments } = await deps.loadProject(cmd.project);
    // Before the intent lookup, as for votes: an undeclared name gates nothing.
    requireDeclared(environments, cmd.environment, "target_environment", cmd.project);
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await once(cmd, policies);
        deps.onOutboxCommitted?.();
        deps.onBrokenGlass?.(cmd.project, cmd.environment);
        return outcome;
      } catch (err) {
        if (!isRetryableDbError(err) || attempt >= BREAK_GLASS_ATTEMPTS) throw err;
      }
    }
  };
}
