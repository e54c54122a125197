import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import { isAdmin } from "../auth/permissions.js";
import type { Role } from "../auth/roles.js";
import type { Clock } from "../clock.js";
import { lockVoteBasis, readVoteBasis, type VoteBasis, type VoteWrite, writeVote } from "../db/approval.repository.js";
import { outboxInsertFor } from "../db/outbox.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import { isRetryableDbError, PermissionDeniedError } from "../errors.js";
import type { ApprovalRule, Policy, ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
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
}

async function delay(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The vote use case: decides a vote on the intent's current votes (four
 * eyes, then the gate state after it) and writes the vote, its history row
 * and its outbox event atomically. Returns the gate state after the vote.
 */
export function createCastVote(deps: CastVoteDeps): (cmd: VoteCommand) => Promise<GateState> {
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
      passed: state.passed,
      decided_at: now.toISOString(),
    };
    const previous = basis.votes.find((v) => v.userId === caller.userId)?.decision;
    const subject = approvalSubject(deps.subjectPrefix, project.organisation, project.project, environment);
    return {
      state,
      write: {
        project,
        releaseIntentId: intentId,
        environment,
        vote: cast,
        ...(previous !== undefined ? { previous } : {}),
        basisVersion: basis.version,
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
  return async function castVote(cmd: VoteCommand): Promise<GateState> {
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
    try {
      if (await writeVote(db, optimistic.write)) {
        deps.onOutboxCommitted?.();
        return optimistic.state;
      }
    } catch (err) {
      // Contention surfaced as a deadlock/serialization error: the locked path below settles it.
      if (!isRetryableDbError(err)) throw err;
    }
    deps.onVoteConflict?.();
    for (let attempt = 1; ; attempt++) {
      try {
        const state = await db.transaction().execute(async (trx) => {
          const locked = decide(cmd, policies, await lockVoteBasis(trx, project, intentId, environment), directory);
          // Cannot fail while we hold the lock; if it does, the invariant is broken: write nothing.
          if (!(await writeVote(trx, locked.write))) throw new Error("vote version changed under the intent row lock");
          return locked.state;
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
