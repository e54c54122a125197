/**
 * Approval requests in the reference model (issue 13 and the lead's
 * decisions in /work/notes/spec-model.md), restated without reading src/:
 * one request per (intent, environment) at a time, `pending → approved |
 * rejected | expired | superseded | cancelled`, final states never change,
 * a new request starts with no votes, a due pending request counts as
 * expired at once. Plain values; the model keeps the list per
 * intent+environment, oldest first.
 */
import type { ProjectRef } from "./model-commands.js";

export type RequestState = "pending" | "approved" | "rejected" | "expired" | "superseded" | "cancelled";

export interface VoteRecord {
  readonly decision: "approved" | "rejected";
  /** The voter's identity-provider groups from the token at vote time (issue 12 records them with the vote). */
  readonly idp: readonly string[];
  /** When this vote was cast (server clock, ms). */
  readonly at: number;
  /**
   * When the voter first cast this same decision on the request (a repeated
   * identical vote may or may not refresh the vote's time: the spec does not
   * say, so the maximum approval age is judged under both readings).
   */
  readonly since: number;
}

export interface ModelRequest {
  readonly state: RequestState;
  /** ms since epoch, the server's clock when it was opened. */
  readonly requestedAt: number;
  /** undefined: no request timeout. */
  readonly expiresAt: number | undefined;
  /** undefined where the spec does not fix it (a request break-glass may open). */
  readonly openedBy: "request" | "evaluation" | "vote" | undefined;
  readonly votes: ReadonlyMap<string, VoteRecord>;
  readonly supersededBy?: string;
  /** Opened by a command whose request the spec does not describe (break-glass): its times are not compared. */
  readonly loose?: boolean;
}

/** What GetApprovalRequest shows of an intent+environment's requests (keys left undefined are not compared). */
export interface RequestView {
  /** Requests ever opened (the newest plus the earlier ones). */
  readonly count: number;
  readonly state: RequestState | "none";
  readonly openedBy?: string;
  readonly supersededBy?: string;
  readonly requestedAt?: number;
  /** null: no timeout. */
  readonly expiresAt?: number | null;
}

/** One outcome the spec allows for a command's effect on the requests, and the model change it stands for. */
export interface RequestOption {
  readonly view: RequestView;
  readonly commit: () => void;
}

/**
 * A command's effect on one intent+environment's requests, checked by
 * reading GetApprovalRequest after the command: `before` when the command
 * was refused, one of `after` when it succeeded (the matching option's
 * commit then runs).
 */
export interface RequestExpect {
  readonly at: { readonly project: ProjectRef; readonly id: string; readonly environment: string };
  readonly before: RequestView;
  readonly after: readonly RequestOption[];
}

/** Due at `now`: a pending request stops being pending at exactly its expires_at (like grants). */
export function due(r: ModelRequest, now: number): boolean {
  return r.state === "pending" && r.expiresAt !== undefined && now >= r.expiresAt;
}

export function viewOf(list: readonly ModelRequest[]): RequestView {
  const r = list[list.length - 1];
  if (r === undefined) return { count: 0, state: "none" };
  return {
    count: list.length,
    state: r.state,
    openedBy: r.openedBy,
    supersededBy: r.state === "superseded" ? r.supersededBy : undefined,
    requestedAt: r.loose ? undefined : r.requestedAt,
    expiresAt: r.loose ? undefined : (r.expiresAt ?? null),
  };
}

/** `list` with its newest request replaced by `r` (or `r` appended when `append`). */
export function withNewest(list: readonly ModelRequest[], r: ModelRequest, append: boolean): ModelRequest[] {
  return append ? [...list, r] : [...list.slice(0, -1), r];
}

/** A vote record for `voter` on `r` at `now`, keeping `since` across repeated identical votes. */
export function voteOn(r: ModelRequest, voter: string, decision: VoteRecord["decision"], idp: readonly string[], now: number): ModelRequest {
  const prev = r.votes.get(voter);
  const since = prev !== undefined && prev.decision === decision ? prev.since : now;
  return { ...r, votes: new Map(r.votes).set(voter, { decision, idp, at: now, since }) };
}

/**
 * How an approval's age stands against a maximum age of `maxAgeSeconds`
 * (0: none): "fresh" and "aged" when both readings of the vote's time agree
 * and the age is not exactly the limit, "unclear" otherwise.
 */
export function ageOf(v: VoteRecord, maxAgeSeconds: number, now: number): "fresh" | "aged" | "unclear" {
  if (maxAgeSeconds <= 0) return "fresh";
  const limit = maxAgeSeconds * 1000;
  if (now - v.at > limit) return "aged";
  if (now - v.since < limit) return "fresh";
  return "unclear";
}
