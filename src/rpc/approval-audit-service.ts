import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { ApprovalDecidedEvent } from "../approval/event.js";
import { authorize } from "../auth/permissions.js";
import { listHistory } from "../db/approval.repository.js";
import { outboxReplay } from "../db/outbox.repository.js";
import type { DB } from "../db/schema.js";
import { optionalEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError, OutOfRangeError } from "../errors.js";
import {
  type ApprovalAuditService,
  type ApprovalEvent,
  ApprovalEventSchema,
  ApprovalHistoryEntrySchema,
  ListApprovalHistoryResponseSchema,
  WatchApprovalEventsResponseSchema,
} from "../gen/releasegate/v1/approval_pb.js";
import { requireProject, requireUuid } from "../policy/validate.js";
import type { ApprovalEventHub } from "../signal/event-hub.js";
import { requestStateToProto } from "./approval-request-convert.js";
import { accessOf } from "./context.js";
import { rfc3339 } from "./convert.js";

/** History page size when the request sets none. */
export const HISTORY_PAGE_DEFAULT = 100;
/** Larger page sizes are lowered to this. */
export const HISTORY_PAGE_MAX = 1000;
/** Events a Watch stream may fall behind by before it is ended (RESOURCE_EXHAUSTED). */
const WATCH_QUEUE_MAX = 1000;

export interface ApprovalAuditDeps {
  readonly db: Kysely<DB>;
  readonly hub: ApprovalEventHub;
  /** Aborted when the server shuts down: ends open Watch streams. */
  readonly shutdown?: AbortSignal;
  /** Open Watch streams allowed at once (config MAX_WATCH_STREAMS); unlimited when unset. */
  readonly maxWatchStreams?: number;
  /** A quiet Watch stream gets a heartbeat message this often, in ms (config WATCH_HEARTBEAT_MS); 0 or unset: never. */
  readonly heartbeatMs?: number;
  /**
   * A resuming Watch stream also replays events created this long before its
   * resume point (they may have committed after it): at least the longest a
   * vote's transaction can run. Default DEFAULT_REPLAY_OVERLAP_MS.
   */
  readonly replayOverlapMs?: number;
  /** Called with the number of events a resuming stream replayed (metrics). */
  readonly onReplayed?: (events: number) => void;
}

/** Replay overlap when deps set none: 1 minute. */
export const DEFAULT_REPLAY_OVERLAP_MS = 60_000;

interface PageCursor {
  /** Last sequence returned. */
  readonly a: string;
  /** The filters the token was issued for. */
  readonly i: string;
  readonly e: string;
}

function encodeToken(c: PageCursor): string {
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeToken(token: string, intent: string, env: string): bigint {
  if (token === "") return 0n;
  let c: Partial<PageCursor>;
  try {
    c = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<PageCursor>;
  } catch (err) {
    throw new InvalidArgumentError("page_token", "is not a token from a previous response", { cause: err });
  }
  if (typeof c.a !== "string" || !/^\d{1,19}$/.test(c.a))
    throw new InvalidArgumentError("page_token", "is not a token from a previous response");
  if (c.i !== intent || c.e !== env)
    throw new InvalidArgumentError("page_token", "was issued for other filters (release_intent_id, target_environment)");
  return BigInt(c.a);
}

function pageSize(requested: number): number {
  if (requested < 0) throw new InvalidArgumentError("page_size", "must not be negative");
  if (requested === 0) return HISTORY_PAGE_DEFAULT;
  return Math.min(requested, HISTORY_PAGE_MAX);
}

export function eventToProto(e: ApprovalDecidedEvent): ApprovalEvent {
  return create(ApprovalEventSchema, {
    eventId: e.event_id,
    kind: e.kind,
    project: { organisation: e.organisation, project: e.project },
    targetEnvironment: e.environment,
    releaseIntentId: e.release_intent_id,
    voterUserId: e.voter_user_id,
    voterUsername: e.voter_username,
    decision: e.decision,
    decisionKind: e.decision_kind,
    currentApprovals: e.current_approvals,
    requiredApprovals: e.required_approvals,
    passed: e.passed,
    decidedAt: e.decided_at,
    reason: e.reason ?? "",
    requestId: e.request_id ?? "",
    requestState: requestStateToProto(e.request_state),
    supersededBy: e.superseded_by ?? "",
  });
}

/** releasegate.v1.ApprovalAuditService: the read-only history and the live decision feed. */
export function createApprovalAuditHandlers(deps: ApprovalAuditDeps): ServiceImpl<typeof ApprovalAuditService> {
  const { db, hub } = deps;
  /** Watch streams open now, across callers (this server's). */
  let openWatches = 0;
  return {
    async listApprovalHistory(req, ctx) {
      const project = requireProject(req.project);
      const intent = req.releaseIntentId === "" ? "" : requireUuid(req.releaseIntentId, "release_intent_id");
      // Filters are not checked against declared environments: reading is harmless.
      const env = optionalEnvironment(req.targetEnvironment, "target_environment") ?? "";
      const after = decodeToken(req.pageToken, intent, env);
      const limit = pageSize(req.pageSize);
      await authorize(accessOf(ctx), project.organisation, "approval.read", {
        project: project.project,
        ...(env === "" ? {} : { environment: env }),
      });
      // One extra row tells whether another page exists.
      const rows = await listHistory(db, {
        project,
        releaseIntentId: intent === "" ? undefined : intent,
        environment: env === "" ? undefined : env,
        afterSequence: after,
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return create(ListApprovalHistoryResponseSchema, {
        entries: page.map((h) =>
          create(ApprovalHistoryEntrySchema, {
            sequence: h.sequence,
            releaseIntentId: h.releaseIntentId,
            targetEnvironment: h.environment,
            userId: h.vote.userId,
            username: h.vote.username,
            decision: h.vote.decision,
            previousDecision: h.previousDecision ?? "",
            decisionKind: h.vote.decisionKind,
            comment: h.vote.comment,
            decidedAt: rfc3339(h.vote.decidedAt),
            intentAuthorUserId: h.intentAuthorUserId,
            intentRegisteredByUserId: h.intentRegisteredByUserId,
          }),
        ),
        nextPageToken:
          rows.length > limit && last !== undefined ? encodeToken({ a: last.sequence.toString(), i: intent, e: env }) : "",
      });
    },

    async *watchApprovalEvents(req, ctx) {
      const project = requireProject(req.project);
      const environment = optionalEnvironment(req.targetEnvironment, "target_environment");
      const resumeAfter =
        req.resumeAfterEventId === "" ? undefined : requireUuid(req.resumeAfterEventId, "resume_after_event_id");
      await authorize(accessOf(ctx), project.organisation, "approval.read", {
        project: project.project,
        ...(environment === undefined ? {} : { environment }),
      });
      // Streams outlive MAX_IN_FLIGHT's unary accounting: a cap of their own keeps them from piling up.
      if (deps.maxWatchStreams !== undefined && openWatches >= deps.maxWatchStreams)
        throw new ConnectError(
          `too many watch streams: ${openWatches} open (MAX_WATCH_STREAMS=${deps.maxWatchStreams}); retry with backoff`,
          Code.ResourceExhausted,
        );
      const heartbeatMs = deps.heartbeatMs ?? 0;

      const queue: ApprovalDecidedEvent[] = [];
      let overflow = false;
      let interrupted = false;
      let notify: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;
      const unsubscribe = hub.subscribe(
        { ...project, environment },
        (e) => {
          // After a gap the client resumes from the last event it got: that
          // must come from before the gap.
          if (interrupted) return;
          if (queue.length >= WATCH_QUEUE_MAX) overflow = true;
          else queue.push(e);
          notify?.();
        },
        () => {
          interrupted = true;
          notify?.();
        },
      );
      const replayAfter = async (afterEventId: string) => {
        const events = await outboxReplay(db, {
          project,
          environment,
          afterEventId,
          overlapMs: deps.replayOverlapMs ?? DEFAULT_REPLAY_OVERLAP_MS,
          limit: WATCH_QUEUE_MAX + 1,
        });
        if (events === undefined)
          throw new OutOfRangeError(
            `resume_after_event_id: event ${afterEventId} is not kept for replay in this project (unknown, or older than the outbox keeps published events); read ListApprovalHistory instead`,
          );
        if (events.length > WATCH_QUEUE_MAX)
          throw new ConnectError(
            `resume_after_event_id: more than ${WATCH_QUEUE_MAX} events to replay; read ListApprovalHistory instead`,
            Code.ResourceExhausted,
          );
        deps.onReplayed?.(events.length);
        return events;
      };
      const ended = () => ctx.signal.aborted || deps.shutdown?.aborted === true;
      const onEnd = () => notify?.();
      ctx.signal.addEventListener("abort", onEnd);
      deps.shutdown?.addEventListener("abort", onEnd);
      openWatches++;
      try {
        // Subscribed above before reading the replay: an event committed in
        // between is in the replay, the queue, or both (sent once).
        const replay = resumeAfter === undefined ? [] : await replayAfter(resumeAfter);
        // Confirms the subscription: every event committed after this message is delivered.
        yield create(WatchApprovalEventsResponseSchema, { subscribed: true });
        const replayed = new Set<string>();
        for (const event of replay) {
          replayed.add(event.event_id);
          yield create(WatchApprovalEventsResponseSchema, { event: eventToProto(event) });
        }
        while (!ended()) {
          if (overflow)
            throw new ConnectError(
              `watch stream fell more than ${WATCH_QUEUE_MAX} events behind; reconnect and read ListApprovalHistory`,
              Code.ResourceExhausted,
            );
          // Events queued before the interruption still go out first.
          if (interrupted && queue.length === 0)
            throw new ConnectError(
              "the event feed was interrupted (the server's database connection was re-established) and events may have been missed: reconnect with resume_after_event_id set to the last event_id received",
              Code.Unavailable,
            );
          const event = queue.shift();
          if (event !== undefined) {
            if (replayed.size > 0 && replayed.delete(event.event_id)) continue;
            yield create(WatchApprovalEventsResponseSchema, { event: eventToProto(event) });
            continue;
          }
          const quiet = await new Promise<boolean>((resolve) => {
            notify = () => resolve(false);
            if (heartbeatMs > 0) timer = setTimeout(() => resolve(true), heartbeatMs);
          });
          clearTimeout(timer);
          notify = undefined;
          if (quiet && !ended()) yield create(WatchApprovalEventsResponseSchema, { heartbeat: true });
        }
      } finally {
        openWatches--;
        clearTimeout(timer);
        unsubscribe();
        ctx.signal.removeEventListener("abort", onEnd);
        deps.shutdown?.removeEventListener("abort", onEnd);
      }
    },
  };
}
