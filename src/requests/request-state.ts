import type { ApprovalRequestStateValue } from "../db/schema.js";

/** The state of an approval request; `pending` is the only one that changes. */
export type RequestState = ApprovalRequestStateValue;

/** The states a request ends in: once there, it never changes. */
export const FINAL_STATES = ["approved", "rejected", "expired", "superseded", "cancelled"] as const;
export type FinalState = (typeof FINAL_STATES)[number];

/** Every state, in the order of the state machine. */
export const REQUEST_STATES: readonly RequestState[] = ["pending", ...FINAL_STATES];

/** How a request was opened (see migrations/0016_approval_requests.sql). */
export type OpenedBy = "request" | "evaluation" | "vote";

/** Who decided a transition when no person did: the reaper, an evaluation, a supersede. */
export const SYSTEM_ACTOR = "system";

/** An approval request as the domain sees it. */
export interface ApprovalRequest {
  readonly id: string;
  readonly organisation: string;
  readonly project: string;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly state: RequestState;
  readonly requestedByUserId: string;
  readonly requestedByActorType: string;
  readonly openedBy: OpenedBy;
  readonly requestedAt: Date;
  /** When a pending request expires; undefined: never. */
  readonly expiresAt?: Date;
  readonly decidedAt?: Date;
  /** A user id, or SYSTEM_ACTOR. */
  readonly decidedBy?: string;
  readonly reason?: string;
  readonly supersededBy?: string;
}

export function isFinal(state: RequestState): state is FinalState {
  return state !== "pending";
}

/** The outcome of asking the state machine for a transition. */
export type TransitionCheck = { readonly ok: true } | { readonly ok: false; readonly why: string };

/**
 * The state machine: only `pending` moves, and only to a final state; a
 * final state never changes (not even to itself: a second expiry or cancel
 * is a no-op the caller must see, not a silent success).
 */
export function checkTransition(from: RequestState, to: RequestState): TransitionCheck {
  if (from !== "pending") return { ok: false, why: `the request is already ${from}, which is final` };
  if (to === "pending") return { ok: false, why: "a pending request cannot become pending again" };
  return { ok: true };
}

/**
 * A pending request whose expiry has come is expired for every decision
 * (fail closed), even before the reaper has written it.
 */
export function isDue(r: Pick<ApprovalRequest, "state" | "expiresAt">, now: Date): boolean {
  return r.state === "pending" && r.expiresAt !== undefined && r.expiresAt.getTime() <= now.getTime();
}

/** The state a request has at `now`: a due pending request counts as expired. */
export function effectiveState(r: Pick<ApprovalRequest, "state" | "expiresAt">, now: Date): RequestState {
  return isDue(r, now) ? "expired" : r.state;
}

/** The reason an expired request carries (the reaper's SQL writes the same words). */
export function expiryReason(expiresAt: Date): string {
  return `request timeout: no decision by ${expiresAt.toISOString()}`;
}

/**
 * The request as it stands at `now`: a due pending request is shown as the
 * expired request the reaper will make of it (decided_by system at its
 * expires_at), so no reader sees it pending after its time.
 */
export function asSeenAt(r: ApprovalRequest, now: Date): ApprovalRequest {
  if (!isDue(r, now) || r.expiresAt === undefined) return r;
  return { ...r, state: "expired", decidedAt: r.expiresAt, decidedBy: SYSTEM_ACTOR, reason: expiryReason(r.expiresAt) };
}

/**
 * When a request opened at `requestedAt` expires: the largest request
 * timeout of the gate's approval policies (seconds; 0 or none: never).
 */
export function expiryFor(requestedAt: Date, timeoutsSeconds: readonly number[]): Date | undefined {
  let longest = 0;
  for (const t of timeoutsSeconds) if (t > longest) longest = t;
  return longest === 0 ? undefined : new Date(requestedAt.getTime() + longest * 1000);
}

/** "cancelled by ada at 2026-…: reason" — what happened to a final request, for messages a person acts on. */
export function describeOutcome(r: ApprovalRequest): string {
  const by = r.decidedBy !== undefined ? ` by ${r.decidedBy}` : "";
  const at = r.decidedAt !== undefined ? ` at ${r.decidedAt.toISOString()}` : "";
  const why = r.reason !== undefined && r.reason !== "" ? `: ${r.reason}` : "";
  return `${r.state}${by}${at}${why}`;
}

/**
 * The sentence for a vote or an evaluation that meets a final request:
 * what happened and what to do.
 */
export function finalRequestMessage(r: ApprovalRequest): string {
  const what = `approval request ${r.id} for release intent ${r.releaseIntentId} in ${r.environment} was ${describeOutcome(r)}`;
  // An approved request needs no more votes; asking again would only return it.
  if (r.state === "approved") return `${what}; the approval gate has passed and takes no more votes`;
  return `${what}; open a new one with RequestApproval (releasegate request)`;
}
