import { createContextKey } from "@connectrpc/connect";
import type { Role } from "./roles.js";

/** A role on the ladder (src/auth/roles.ts), as a token's `org_roles` names it. */
export type OrgRole = Role;
export type ActorType = "user" | "service";

/** The authenticated caller, from verified token claims only. */
export interface Caller {
  readonly userId: string;
  readonly username: string;
  readonly actorType: ActorType;
  /** organisation → role (roles outside the ladder are left out: no role there) */
  readonly orgRoles: ReadonlyMap<string, OrgRole>;
  /** The token's identity-provider groups (RELEASEGATE_JWT_GROUPS_CLAIM); empty without the claim. */
  readonly idpGroups: readonly string[];
}

/** Set by the auth interceptor; handlers read it via `ctx.values.get(callerKey)`. */
export const callerKey = createContextKey<Caller | undefined>(undefined, {
  description: "authenticated caller",
});
