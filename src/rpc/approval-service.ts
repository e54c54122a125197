import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { APPROVAL_DECIDED, type ApprovalDecidedEvent } from "../approval/event.js";
import { approvalPoliciesFor, COMMENT_MAX, decisionKindFor, type GateState, gateState } from "../approval/rules.js";
import type { Decision, Vote } from "../approval/vote.js";
import { authorize, isAdmin } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import { castVote, listCurrentVotes, lockIntentForVote } from "../db/approval.repository.js";
import { insertOutboxEvent } from "../db/outbox.repository.js";
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

  async function vote(req: VoteInput, decision: Decision, ctx: HandlerContext): Promise<GateState> {
    const project = requireProject(req.project);
    const caller = callerOf(ctx);
    authorize(caller, project.organisation, "approval.vote");
    const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
    const environment = requireName(req.targetEnvironment, "target_environment");
    const comment = requireComment(req.comment);

    // From the policy cache, outside the transaction: one round trip fewer per vote.
    const policies = await loadPolicies(project);
    for (let attempt = 1; ; attempt++) {
      try {
        const state = await db.transaction().execute(async (trx) => {
          // The lock serialises votes on this intent (see lockIntentForVote).
          const intent = await lockIntentForVote(trx, project, intentId);
          if (intent === undefined) throw intentNotFound(project, intentId);
          const gate = gatePolicies(policies, project, environment);
          const decisionKind = decisionKindFor({
            decision,
            forceBypass: req.forceBypass ?? false,
            voterId: caller.userId,
            voterIsAdmin: isAdmin(caller, project.organisation),
            authorId: intent.authorUserId,
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
          const { votes } = await castVote(trx, { project, releaseIntentId: intentId, environment, vote: cast });
          const result = gateState(gate, votes);
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
            current_approvals: result.strictest.currentApprovals,
            required_approvals: result.strictest.requiredApprovals,
            passed: result.passed,
            decided_at: rfc3339(now),
          };
          const subject = approvalSubject(deps.subjectPrefix, project.organisation, project.project, environment);
          await insertOutboxEvent(trx, event, subject, now);
          return result;
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
