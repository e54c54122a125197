import type { HandlerContext } from "@connectrpc/connect";
import { type Access, accessKey, createAccess } from "../auth/access.js";
import { type Caller, callerKey } from "../auth/caller.js";
import { systemClock } from "../clock.js";
import { UnauthenticatedError } from "../errors.js";

/** The authenticated caller; the auth interceptor guarantees one on every route. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new UnauthenticatedError("missing bearer token");
  return caller;
}

/**
 * The caller's Access for this request (token roles and role grants). A
 * route served without the auth interceptor's directory falls back to the
 * token's roles alone: never more than the token says.
 */
export function accessOf(ctx: HandlerContext): Access {
  const access = ctx.values.get(accessKey);
  if (access !== undefined) return access;
  const fallback = createAccess(callerOf(ctx), { clock: systemClock });
  ctx.values.set(accessKey, fallback);
  return fallback;
}
