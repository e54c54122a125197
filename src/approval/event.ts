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
  /** Empty on a request's lifecycle event that no vote caused (e.g. `approval.superseded`). */
  readonly decision: Decision | "";
  readonly decision_kind: DecisionKind | "";
  readonly current_approvals: number;
  readonly required_approvals: number;
  /** Every approval policy for the environment is satisfied. */
  readonly passed: boolean;
  /** RFC 3339. */
  readonly decided_at: string;
  /** A break-glass's written reason (absent on votes); on a request's lifecycle event, why it ended. */
  readonly reason?: string;
  /** The approval request the event concerns, when there is one. */
  readonly request_id?: string;
  /** That request's state after the event: `pending`, `superseded`, … */
  readonly request_state?: string;
  /** On `approval.superseded`: the newer release intent. */
  readonly superseded_by?: string;
}

/** Parses an event from JSON we wrote ourselves; undefined when it is not one. */
export function parseApprovalEvent(json: string): ApprovalDecidedEvent | undefined {
  try {
    const v = JSON.parse(json) as Partial<ApprovalDecidedEvent>;
    const known =
      v.kind === APPROVAL_DECIDED ||
      v.kind === APPROVAL_BREAK_GLASS ||
      (REQUEST_EVENT_KINDS as readonly string[]).includes(v.kind ?? "");
    return known && typeof v.event_id === "string"
      ? (v as ApprovalDecidedEvent)
      : undefined;
  } catch {
    return undefined;
  }
}
