import type { ApprovalRequestStateValue } from "../db/schema.js";
import type { Decision, DecisionKind } from "./vote.js";

/** Kind of the event of a vote. */
export const APPROVAL_DECIDED = "approval.decided";
/** Kind of the event of a break-glass (src/approval/break-glass.ts). */
export const APPROVAL_BREAK_GLASS = "approval.break_glass";

/** Kinds of the lifecycle events of approval requests (issue 13). */
export const APPROVAL_REQUESTED = "approval.requested";
export const APPROVAL_APPROVED = "approval.approved";
export const APPROVAL_REJECTED = "approval.rejected";
export const APPROVAL_EXPIRED = "approval.expired";
export const APPROVAL_SUPERSEDED = "approval.superseded";
export const APPROVAL_CANCELLED = "approval.cancelled";

/** Every lifecycle kind of a request, in the order of the state machine. */
export const REQUEST_EVENT_KINDS = [
  APPROVAL_REQUESTED,
  APPROVAL_APPROVED,
  APPROVAL_REJECTED,
  APPROVAL_EXPIRED,
  APPROVAL_SUPERSEDED,
  APPROVAL_CANCELLED,
] as const;

/** The kinds of event the approval gate emits. */
export type ApprovalEventKind = typeof APPROVAL_DECIDED | typeof APPROVAL_BREAK_GLASS | (typeof REQUEST_EVENT_KINDS)[number];

/**
 * The structured event published to JetStream and streamed by
 * WatchApprovalEvents, one per vote (first vote, change or bypass) and one
 * per break-glass (kind `approval.break_glass`, with its `reason`).
 * Snake-case JSON, stable: consumers in other languages read it.
 */
export interface ApprovalDecidedEvent {
  readonly event_id: string;
  readonly kind: ApprovalEventKind;
  readonly organisation: string;
  readonly project: string;
  readonly environment: string;
  readonly release_intent_id: string;
  readonly voter_user_id: string;
  readonly voter_username: string;
  /** A vote's decision; on a request's lifecycle event, the request's new state. */
  readonly decision: Decision | ApprovalRequestStateValue;
  /** A vote's kind; on a lifecycle event `request_<state>` (e.g. `request_expired`). */
  readonly decision_kind: DecisionKind | RequestDecisionKind;
  readonly current_approvals: number;
  readonly required_approvals: number;
  /** Every approval policy for the environment is satisfied. */
  readonly passed: boolean;
  /** RFC 3339. */
  readonly decided_at: string;
  /** A break-glass's written reason (absent on votes); on a lifecycle event, why the request ended. */
  readonly reason?: string;
  /** The approval request the event belongs to (votes and break-glass: the one they were cast on, when any). */
  readonly request_id?: string;
  /** That request's state after the event. */
  readonly request_state?: ApprovalRequestStateValue;
  /** On `approval.superseded`: the newer release intent. */
  readonly superseded_by?: string;
}

/** decision_kind of a request's lifecycle event (and its history row). */
export type RequestDecisionKind = `request_${ApprovalRequestStateValue}`;

const KNOWN_KINDS: ReadonlySet<string> = new Set([APPROVAL_DECIDED, APPROVAL_BREAK_GLASS, ...REQUEST_EVENT_KINDS]);

/** The lifecycle event kind of a request entering `state`. */
export function requestEventKind(state: ApprovalRequestStateValue): (typeof REQUEST_EVENT_KINDS)[number] {
  return state === "pending" ? APPROVAL_REQUESTED : (`approval.${state}` as (typeof REQUEST_EVENT_KINDS)[number]);
}

/** Parses an event from JSON we wrote ourselves; undefined when it is not one. */
export function parseApprovalEvent(json: string): ApprovalDecidedEvent | undefined {
  try {
    const v = JSON.parse(json) as Partial<ApprovalDecidedEvent>;
    return typeof v.kind === "string" && KNOWN_KINDS.has(v.kind) && typeof v.event_id === "string"
      ? (v as ApprovalDecidedEvent)
      : undefined;
  } catch {
    return undefined;
  }
}
