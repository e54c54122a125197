import type { Kysely, Transaction } from "kysely";
import { approvalPoliciesFor } from "../approval/rules.js";
import type { Caller } from "../auth/caller.js";
import type { Clock } from "../clock.js";
import { adoptLegacyVotes } from "../db/approval.repository.js";
import {
  expireRequest,
  findNewestRequest,
  lockIntent,
  openPendingRequest,
} from "../db/approval-request.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import { FailedPreconditionError, isRetryableDbError } from "../errors.js";
import type { Policy, ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
import { createReadRequest, type RequestView } from "./read-request.js";
import { type ApprovalRequest, expiryFor, isDue, type OpenedBy } from "./request-state.js";

/** Attempts of an opening transaction that hit a serialization failure or deadlock. */
const OPEN_ATTEMPTS = 3;

export interface OpenRequestDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** JetStream subject prefix events are addressed to (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
  /** Called after a transition committed its outbox event (wakes the in-process relay). */
  readonly onOutboxCommitted?: () => void;
}

/** A validated, authorised RequestApproval. */
export interface OpenRequestCommand {
  readonly caller: Caller;
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
}

export interface OpenRequestOutcome {
  readonly request: ApprovalRequest;
  /** False when a pending request already existed. */
  readonly created: boolean;
}

/** RequestApproval's answer: the request, whether it is new, and how it stands (intent, progress). */
export interface RequestApprovalOutcome extends OpenRequestOutcome {
  readonly view: RequestView;
}

/** The request timeouts of a gate's approval policies, in seconds. */
export function gateTimeouts(gate: readonly Policy[]): number[] {
  return gate.map((p) => (p.config.kind === "external_approval" ? (p.config.requestTimeoutSeconds ?? 0) : 0));
}

/** What opening a request inside someone's transaction needs. */
export interface OpenInTransaction {
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
  readonly requestedBy: { readonly userId: string; readonly username: string; readonly actorType: string };
  readonly openedBy: OpenedBy;
  readonly gate: readonly Policy[];
  readonly now: Date;
  readonly subjectPrefix: string;
}

/**
 * Opens the request of an intent and environment in the caller's
 * transaction, or returns the pending one. A pending request that is due is
 * expired first (its history and event written), then a new one opens. The
 * very first request of an intent and environment adopts the votes cast
 * before requests existed (request_id NULL); a later one starts with none.
 */
export async function openRequestIn(trx: Transaction<DB>, o: OpenInTransaction): Promise<OpenRequestOutcome> {
  // Callers that hold the intent lock already (votes) take it again at no cost.
  await lockIntent(trx, o.intentId);
  const newest = await findNewestRequest(trx, o.intentId, o.environment);
  // Asking again after an approval returns it: a member must not be able to
  // throw away a passed gate by asking. (When the approvals no longer pass,
  // e.g. aged out, the next evaluation opens the new request.)
  if (newest !== undefined && newest.state === "approved" && o.openedBy === "request") return { request: newest, created: false };
  if (newest !== undefined && newest.state === "pending") {
    if (!isDue(newest, o.now)) return { request: newest, created: false };
    await expireRequest(trx, newest, o.subjectPrefix);
  }
  const opened = await openPendingRequest(trx, {
    project: o.project,
    releaseIntentId: o.intentId,
    environment: o.environment,
    requestedBy: o.requestedBy,
    openedBy: o.openedBy,
    requestedAt: o.now,
    ...(() => {
      const expiresAt = expiryFor(o.now, gateTimeouts(o.gate));
      return expiresAt === undefined ? {} : { expiresAt };
    })(),
    subjectPrefix: o.subjectPrefix,
  });
  if (opened.created && newest === undefined) await adoptLegacyVotes(trx, o.intentId, o.environment, opened.request.id);
  return opened;
}

/**
 * RequestApproval: opens the approval request of an intent and environment
 * (opened_by `request`), idempotently. FAILED_PRECONDITION for an undeclared
 * environment or one no enabled approval policy gates; NOT_FOUND for an
 * intent not in the project.
 */
export function createOpenRequest(deps: OpenRequestDeps): (cmd: OpenRequestCommand) => Promise<RequestApprovalOutcome> {
  const { db, clock } = deps;
  const readRequest = createReadRequest(deps);
  return async ({ caller, project, intentId, environment }) => {
    const { policies, environments } = await deps.loadProject(project);
    requireDeclared(environments, environment, "target_environment", project);
    if ((await findIntent(db, project, intentId)) === undefined) throw intentNotFound(project, intentId);
    const gate = approvalPoliciesFor(policies, environment);
    if (gate.length === 0)
      throw new FailedPreconditionError(
        "target_environment",
        `nothing to request: no enabled external approval policy for ${environment} in ${project.organisation}/${project.project}; create one first`,
      );
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await db.transaction().execute((trx) =>
          openRequestIn(trx, {
            project,
            intentId,
            environment,
            requestedBy: { userId: caller.userId, username: caller.username, actorType: caller.actorType },
            openedBy: "request",
            gate,
            now: clock.now(),
            subjectPrefix: deps.subjectPrefix,
          }),
        );
        if (outcome.created) deps.onOutboxCommitted?.();
        return { ...outcome, view: await readRequest({ project, intentId, environment }) };
      } catch (err) {
        if (!isRetryableDbError(err) || attempt >= OPEN_ATTEMPTS) throw err;
      }
    }
  };
}
