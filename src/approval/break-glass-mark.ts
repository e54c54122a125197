import { InvalidArgumentError } from "../errors.js";

/** Shortest break-glass reason, in characters after trimming. */
export const BREAK_GLASS_REASON_MIN = 10;
/** Longest break-glass reason, in characters. */
export const BREAK_GLASS_REASON_MAX = 2000;

/**
 * The newest break-glass on a release intent for one target environment:
 * while it exists, every approval policy of that environment passes.
 */
export interface BreakGlassMark {
  readonly userId: string;
  readonly username: string;
  readonly reason: string;
  /** The server's clock when it was recorded. */
  readonly recordedAt: Date;
}

/** What evaluations and approval state say: `break-glass by ada at <RFC 3339>: <reason>`. */
export function breakGlassReason(mark: BreakGlassMark): string {
  return `break-glass by ${mark.userId} at ${mark.recordedAt.toISOString()}: ${mark.reason}`;
}

/** Validates a break-glass reason (a shape check): 10 characters after trimming, at most 2000. */
export function requireBreakGlassReason(reason: string, field = "reason"): string {
  if (reason.length > BREAK_GLASS_REASON_MAX)
    throw new InvalidArgumentError(field, `must be at most ${BREAK_GLASS_REASON_MAX} characters (got ${reason.length})`);
  if (reason.trim().length < BREAK_GLASS_REASON_MIN)
    throw new InvalidArgumentError(
      field,
      `a break-glass needs a reason (at least ${BREAK_GLASS_REASON_MIN} characters): say what is broken and why the gate cannot wait`,
    );
  return reason;
}

/** A break-glass mark as `json_build_array(user_id, username, reason, recorded_at)`. */
export type BreakGlassJson = [string, string, string, string];

/** Maps the JSON form (timestamps as ISO strings; null when there is none) to a mark. */
export function breakGlassFromJson(row: BreakGlassJson | null | undefined): BreakGlassMark | undefined {
  if (row === null || row === undefined) return undefined;
  const [userId, username, reason, recordedAt] = row;
  return { userId, username, reason, recordedAt: new Date(recordedAt) };
}
