import { createContextKey } from "@connectrpc/connect";

export type OrgRole = "member" | "admin";
export type ActorType = "user" | "service";

/** The authenticated caller, from verified token claims only. */
export interface Caller {
  readonly userId: string;
  readonly username: string;
  readonly actorType: ActorType;
  /** organisation → role */
  readonly orgRoles: ReadonlyMap<string, OrgRole>;
}

/** Set by the auth interceptor; handlers read it via `ctx.values.get(callerKey)`. */
export const callerKey = createContextKey<Caller | undefined>(undefined, {
  description: "authenticated caller",
});
