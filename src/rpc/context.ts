import type { HandlerContext } from "@connectrpc/connect";
import { type Caller, callerKey } from "../auth/caller.js";
import { UnauthenticatedError } from "../errors.js";

/** The authenticated caller; the auth interceptor guarantees one on every route. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new UnauthenticatedError("missing bearer token");
  return caller;
}
