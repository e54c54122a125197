import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import { isAdmin } from "../auth/permissions.js";
import type { Role } from "../auth/roles.js";
import type { Clock } from "../clock.js";
import {
  currentVoteVersion,
  lockVoteBasis,
  readVoteBasis,
  type VoteBasis,
  type VoteWrite,
  writeVote,
} from "../db/approval.repository.js";
import { finishRequest } from "../db/approval-request.repository.js";
import { outboxInsertFor } from "../db/outbox.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import { FailedPreconditionError, isRetryableDbError, PermissionDeniedError } from "../errors.js";
import type { ApprovalRule, Policy, ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
import { openRequestIn } from "../requests/open-request.js";
import { asSeenAt, finalRequestMessage } from "../requests/request-state.js";
import { approvalSubject } from "../signal/subject.js";
import { isEligible, type RuleDirectory, type VoterFacts, whatMakesEligible } from "./eligibility.js";
import { APPROVAL_DECIDED, type ApprovalDecidedEvent } from "./event.js";
import { loadRuleDirectory } from "./load-rule-directory.js";
import { approvalPoliciesFor, decisionKindFor, type GateState, gatePolicies, gateState } from "./rules.js";
import { type Decision, type Vote, withVote } from "./vote.js";

/** Attempts of a vote transaction that hit a serialization failure or deadlock. */
const VOTE_ATTEMPTS = 5;

export interface CastVoteDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** JetStream subject prefix events are addressed to (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
  /** Called after a vote committed its outbox event (wakes the in-process relay). */
  readonly onOutboxCommitted?: () => void;
  /** Called when a vote's optimistic write lost to a concurrent vote (metrics). */
  readonly onVoteConflict?: () => void;
}

/** A validated, authorised vote request. */
export interface VoteCommand {
  readonly caller: Caller;
  readonly decision: Decision;
  readonly forceBypass: boolean;
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
  readonly comment: string | undefined;
  /** The role the voter's token gives them in the organisation (recorded with the vote; grants are read at count time). */
  readonly tokenRole?: Role;
}

interface Decided {
  readonly state: GateState;
  readonly write: VoteWrite;
  /** No request exists yet: this vote opens one (opened_by `vote`). */
  readonly opens: boolean;
  /** What the vote does to its pending request: approves it (the gate passes) or rejects it (reject_blocks). */
  readonly ends?: { readonly to: "approved" | "rejected"; readonly reason: string };
}

/** The first reject_blocks policy for which this rejection counts (the voter is eligible), if any. */
function blockingPolicy(gate: readonly Policy[], voter: VoterFacts, dir: RuleDirectory | undefined): Policy | undefined {
  for (const p of gate) {
    if (p.config.kind !== "external_approval" || p.config.rejectBlocks !== true) continue;
    const rules = p.config.rules ?? [];
    if (rules.length === 0) return p;
    if (dir !== undefined && rules.some((r) => isEligible(r, voter, dir))) return p;
  }
  return undefined;
}

async function delay(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The vote use case: decides a vote on the intent's current votes (four
 * eyes, then the gate state after it) and writes the vote, its history row
 * and its outbox event atomically. Returns the gate state after the vote.
 */
/** The gate after a vote, and the request the vote was cast on (its state after the vote). */
export type VoteOutcome = GateState & { readonly request?: { readonly id: string; readonly state: string } };

export function createCastVote(deps: CastVoteDeps): (cmd: VoteCommand) => Promise<VoteOutcome> {
  const { db, clock } = deps;

  /**
   * Decides a vote on `basis`. No I/O; throws domain errors (NOT_FOUND,
   * PERMISSION_DENIED) before anything is written.
   */
  function decide(
    cmd: VoteCommand,
    policies: readonly Policy[],
    basis: VoteBasis | undefined,
    directory: RuleDirectory | undefined,
  ): Decided {
    const { caller, decision, project, intentId, environment, comment } = cmd;
    if (basis === undefined) throw intentNotFound(project, intentId);
    const gate = gatePolicies(policies, project, environment);
    const decisionKind = decisionKindFor({
      decision,
      forceBypass: cmd.forceBypass,
      voterId: caller.userId,
      voterIsAdmin: isAdmin(caller, project.organisation),
      intentId,
      authorId: basis.authorUserId,
      registrantId: basis.registeredByUserId,
      registrantIsUser: basis.registeredByActorType !== "service",
    });
    const now = directory?.now ?? clock.now();
    const voter = { userId: caller.userId, idpGroups: caller.idpGroups, tokenRole: cmd.tokenRole };
    if (decision === "approved" && directory !== undefined) requireEligible(gate, voter, directory, intentId);
    // Votes belong to the newest request; a final one (or one past its expiry) takes none.
    const request = basis.request === undefined ? undefined : asSeenAt(basis.request, now);
    if (request !== undefined && request.state !== "pending")
      throw new FailedPreconditionError("target_environment", finalRequestMessage(request));
    const cast: Vote = {
      userId: caller.userId,
      username: caller.username,
      decision,
      decisionKind,
      decidedAt: now,
      ...(comment !== undefined ? { comment } : {}),
      idpGroups: caller.idpGroups,
      ...(cmd.tokenRole !== undefined ? { tokenRole: cmd.tokenRole } : {}),
    };
    const rulesContext =
      directory === undefined
        ? undefined
        : {
            directory,
            parties: {
              authorId: basis.authorUserId,
              ...(basis.registeredByActorType !== "service" ? { registrantId: basis.registeredByUserId } : {}),
            },
          };
    const state = gateState(gate, withVote(basis.votes, cast), rulesContext, basis.breakGlass);
    const blocking = decision === "rejected" ? blockingPolicy(gate, voter, directory) : undefined;
    const ends = blocking
      ? { to: "rejected" as const, reason: `rejected by ${caller.userId} (policy '${blocking.name}' blocks on a rejection)` }
      : state.passed
        ? {
            to: "approved" as const,
            reason:
              basis.breakGlass !== undefined
                ? `the gate is open: break-glass by ${basis.breakGlass.userId}: ${basis.breakGlass.reason}`
                : `approved by ${caller.userId}'s vote: every approval policy on ${environment} passes`,
          }
        : undefined;
    const event: ApprovalDecidedEvent = {
      event_id: randomUUID(),
      kind: APPROVAL_DECIDED,
      organisation: project.organisation,
      project: project.project,
      environment,
      release_intent_id: intentId,
      voter_user_id: caller.userId,
      voter_username: caller.username,
      decision,
      decision_kind: decisionKind,
      current_approvals: state.strictest.currentApprovals,
      required_approvals: state.strictest.requiredApprovals,
      passed: state.passed && blocking === undefined,
      decided_at: now.toISOString(),
      ...(request !== undefined ? { request_id: request.id, request_state: ends?.to ?? "pending" } : {}),
    };
    const previous = basis.votes.find((v) => v.userId === caller.userId)?.decision;
    const subject = approvalSubject(deps.subjectPrefix, project.organisation, project.project, environment);
    return {
      state: blocking === undefined ? state : { ...state, passed: false },
      opens: request === undefined,
      ...(ends !== undefined ? { ends } : {}),
      write: {
        project,
        releaseIntentId: intentId,
        environment,
        vote: cast,
        ...(previous !== undefined ? { previous } : {}),
        basisVersion: basis.version,
        ...(request !== undefined ? { requestId: request.id } : {}),
        outbox: outboxInsertFor(event, subject),
      },
    };
  }

  /**
   * Optimistic first: read the basis, decide, and write in one statement that
   * succeeds only if no other vote on the intent committed in between (two
   * round trips, no transaction held open). If one did, decide again under
   * the intent row lock, where the write cannot lose.
   */
  const outcome = (d: Decided): VoteOutcome =>
    d.write.requestId === undefined ? d.state : { ...d.state, request: { id: d.write.requestId, state: d.ends?.to ?? "pending" } };

  return async function castVote(cmd: VoteCommand): Promise<VoteOutcome> {
    const { project, intentId, environment } = cmd;
    const { policies, environments } = await deps.loadProject(project);
    // Before the intent lookup: a vote on an undeclared name gates nothing.
    requireDeclared(environments, environment, "target_environment", project);
    const gate = approvalPoliciesFor(policies, environment);
    const [basis, directory] = await Promise.all([
      readVoteBasis(db, project, intentId, environment),
      loadRuleDirectory(db, project, environment, gate, clock.now()),
    ]);
    const optimistic = decide(cmd, policies, basis, directory);
    // A vote that opens, approves or rejects its request writes under the intent lock (below).
    if (!optimistic.opens && optimistic.ends === undefined) {
      try {
        if (await writeVote(db, optimistic.write)) {
          deps.onOutboxCommitted?.();
          return outcome(optimistic);
        }
      } catch (err) {
        // Contention surfaced as a deadlock/serialization error: the locked path below settles it.
        if (!isRetryableDbError(err)) throw err;
      }
      deps.onVoteConflict?.();
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const state = await db.transaction().execute(async (trx) => {
          const basis = await lockVoteBasis(trx, project, intentId, environment);
          let locked = decide(cmd, policies, basis, directory);
          if (locked.opens && basis !== undefined) {
            // Forest's clients vote without asking: the first vote opens the request (adopting earlier votes).
            const { request } = await openRequestIn(trx, {
              project,
              intentId,
              environment,
              requestedBy: { userId: cmd.caller.userId, username: cmd.caller.username, actorType: cmd.caller.actorType },
              openedBy: "vote",
              gate: approvalPoliciesFor(policies, environment),
              now: directory?.now ?? clock.now(),
              subjectPrefix: deps.subjectPrefix,
            });
            locked = decide(cmd, policies, { ...basis, request, version: await currentVoteVersion(trx, intentId) }, directory);
          }
          // Cannot fail while we hold the lock; if it does, the invariant is broken: write nothing.
          if (!(await writeVote(trx, locked.write))) throw new Error("vote version changed under the intent row lock");
          const requestId = locked.write.requestId;
          if (locked.ends !== undefined && requestId !== undefined)
            await finishRequest(trx, {
              id: requestId,
              to: locked.ends.to,
              actor: { userId: cmd.caller.userId, username: cmd.caller.username },
              decidedAt: locked.write.vote.decidedAt,
              reason: locked.ends.reason,
              counts: {
                currentApprovals: locked.state.strictest.currentApprovals,
                requiredApprovals: locked.state.strictest.requiredApprovals,
              },
              subjectPrefix: deps.subjectPrefix,
            });
          return outcome(locked);
        });
        deps.onOutboxCommitted?.();
        return state;
      } catch (err) {
        if (!isRetryableDbError(err) || attempt >= VOTE_ATTEMPTS) throw err;
        // Jittered backoff so the retried transactions do not collide again.
        await delay(5 * attempt + Math.random() * 20);
      }
    }
  };
}

/**
 * Vote-time eligibility: when every approval policy gating the environment
 * has rules, an approval from someone eligible for none of them is
 * PERMISSION_DENIED, naming what would make them eligible. (A policy without
 * rules counts anyone's approval, so with one the vote is taken.)
 */
function requireEligible(gate: readonly Policy[], voter: VoterFacts, dir: RuleDirectory, intentId: string): void {
  const rules: ApprovalRule[] = [];
  for (const p of gate) {
    if (p.config.kind !== "external_approval") continue;
    if (p.config.rules === undefined || p.config.rules.length === 0) return;
    rules.push(...p.config.rules);
  }
  if (rules.length === 0 || rules.some((r) => isEligible(r, voter, dir))) return;
  const where = `${dir.organisation}/${dir.at.project}`;
  throw new PermissionDeniedError(
    `${voter.userId} may not approve release intent ${intentId} for ${dir.at.environment} in ${where}: ${whatMakesEligible(rules, where)}`,
  );
}
