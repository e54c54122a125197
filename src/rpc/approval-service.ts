import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { APPROVAL_DECIDED, type ApprovalDecidedEvent } from "../approval/event.js";
import { approvalPoliciesFor, COMMENT_MAX, decisionKindFor, type GateState, gateState } from "../approval/rules.js";
import { type Decision, type Vote, withVote } from "../approval/vote.js";
import type { Caller } from "../auth/caller.js";
import { authorize, isAdmin } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import {
  listCurrentVotes,
  lockVoteBasis,
  readVoteBasis,
  type VoteBasis,
  type VoteWrite,
  writeVote,
} from "../db/approval.repository.js";
import { outboxInsertFor } from "../db/outbox.repository.js";
import { listPolicies } from "../db/policy.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { InvalidArgumentError, isRetryableDbError, NotFoundError } from "../errors.js";
import {
  ExternalApproveReleaseResponseSchema,
  ExternalRejectReleaseResponseSchema,
  GetExternalApprovalStateResponseSchema,
  type PolicyService,
} from "../gen/forest/v1/policy_pb.js";
import type { Policy, ProjectRef } from "../policy/policy.js";
import { requireName, requireProject, requireUuid } from "../policy/validate.js";
import { intentNotFound } from "../release/release.js";
import { approvalSubject } from "../signal/subject.js";
import { callerOf } from "./context.js";
import { approvalStateToProto, rfc3339 } from "./convert.js";

/** Attempts of a vote transaction that hit a serialization failure or deadlock. */
const VOTE_ATTEMPTS = 5;

export interface ApprovalServiceDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** JetStream subject prefix events are addressed to (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Called after a vote committed its outbox event (wakes the in-process relay). */
  readonly onOutboxCommitted?: () => void;
  /** Called when a vote's optimistic write lost to a concurrent vote (metrics). */
  readonly onVoteConflict?: () => void;
  /** Reads a project's policies; defaults to the database (lets the policy cache sit in front). */
  readonly loadPolicies?: (project: ProjectRef) => Promise<readonly Policy[]>;
}

type ApprovalMethods =
  | "externalApproveRelease"
  | "externalRejectRelease"
  | "getExternalApprovalState"
  | "approveRelease"
  | "rejectRelease"
  | "getApprovalState";

interface VoteInput {
  project?: { organisation: string; project: string };
  releaseIntentId: string;
  targetEnvironment: string;
  comment?: string;
  forceBypass?: boolean;
}

/** A validated vote request with the project's policies: all a decision needs but the basis it reads from the database. */
interface VoteTarget {
  readonly caller: Caller;
  readonly decision: Decision;
  readonly forceBypass: boolean;
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
  readonly comment: string | undefined;
  /** The project's policies (from the policy cache). */
  readonly policies: readonly Policy[];
}

function requireComment(comment: string | undefined): string | undefined {
  if (comment === undefined || comment === "") return undefined;
  if (comment.length > COMMENT_MAX)
    throw new InvalidArgumentError("comment", `must be at most ${COMMENT_MAX} characters (got ${comment.length})`);
  return comment;
}

function gatePolicies(all: readonly Policy[], project: ProjectRef, environment: string): Policy[] {
  const gate = approvalPoliciesFor(all, environment);
  if (gate.length === 0)
    throw new NotFoundError(
      `target_environment: no enabled external approval policy for ${environment} in ${project.organisation}/${project.project}`,
    );
  return gate;
}

async function delay(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The approval RPCs of forest.v1.PolicyService, each under both its Forest
 * name and its short alias (one implementation). Vote responses show the
 * strictest enabled approval policy for the environment (highest
 * required_approvals), which passes exactly when all of them pass.
 */
export function createApprovalHandlers(deps: ApprovalServiceDeps): Pick<ServiceImpl<typeof PolicyService>, ApprovalMethods> {
  const { db, clock } = deps;
  const loadPolicies = deps.loadPolicies ?? ((project: ProjectRef) => listPolicies(db, project));

  /**
   * Decides a vote on `basis`: the four-eyes rule, the votes after it, the
   * gate state they give, and the rows to write. No I/O; throws domain errors
   * (NOT_FOUND, PERMISSION_DENIED) before anything is written.
   */
  function decide(v: VoteTarget, basis: VoteBasis | undefined): { state: GateState; write: VoteWrite } {
    const { caller, decision, project, intentId, environment, comment } = v;
    if (basis === undefined) throw intentNotFound(project, intentId);
    const gate = gatePolicies(v.policies, project, environment);
    const decisionKind = decisionKindFor({
      decision,
      forceBypass: v.forceBypass,
      voterId: caller.userId,
      voterIsAdmin: isAdmin(caller, project.organisation),
      authorId: basis.authorUserId,
    });
    const now = clock.now();
    const cast: Vote = {
      userId: caller.userId,
      username: caller.username,
      decision,
      decisionKind,
      decidedAt: now,
      ...(comment !== undefined ? { comment } : {}),
    };
    const state = gateState(gate, withVote(basis.votes, cast));
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
      decided_at: rfc3339(now),
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
  async function vote(req: VoteInput, decision: Decision, ctx: HandlerContext): Promise<GateState> {
    const project = requireProject(req.project);
    const caller = callerOf(ctx);
    authorize(caller, project.organisation, "approval.vote");
    const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
    const environment = requireName(req.targetEnvironment, "target_environment");
    const comment = requireComment(req.comment);
    // Policies from the policy cache: no round trip per vote.
    const target: VoteTarget = {
      caller,
      decision,
      forceBypass: req.forceBypass ?? false,
      project,
      intentId,
      environment,
      comment,
      policies: await loadPolicies(project),
    };

    const optimistic = decide(target, await readVoteBasis(db, project, intentId, environment));
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
          const locked = decide(target, await lockVoteBasis(trx, project, intentId, environment));
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
  }

  const approve: ServiceImpl<typeof PolicyService>["externalApproveRelease"] = async (req, ctx) => {
    const { strictest } = await vote(req, "approved", ctx);
    return create(ExternalApproveReleaseResponseSchema, { state: approvalStateToProto(strictest) });
  };

  const reject: ServiceImpl<typeof PolicyService>["externalRejectRelease"] = async (req, ctx) => {
    const { strictest } = await vote(req, "rejected", ctx);
    return create(ExternalRejectReleaseResponseSchema, { state: approvalStateToProto(strictest) });
  };

  const getState: ServiceImpl<typeof PolicyService>["getExternalApprovalState"] = async (req, ctx) => {
    const project = requireProject(req.project);
    authorize(callerOf(ctx), project.organisation, "approval.read");
    const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
    const environment = requireName(req.targetEnvironment, "target_environment");
    if ((await findIntent(db, project, intentId)) === undefined) throw intentNotFound(project, intentId);
    const gate = gatePolicies(await listPolicies(db, project), project, environment);
    const { strictest } = gateState(gate, await listCurrentVotes(db, intentId, environment));
    return create(GetExternalApprovalStateResponseSchema, { state: approvalStateToProto(strictest) });
  };

  return {
    externalApproveRelease: approve,
    externalRejectRelease: reject,
    getExternalApprovalState: getState,
    approveRelease: approve,
    rejectRelease: reject,
    getApprovalState: getState,
  };
}
