import { createContextKey } from "@connectrpc/connect";
import type { Location, RoleGrant } from "../approver/directory.js";
import { effectiveRole } from "../approver/effective-role.js";
import type { Clock } from "../clock.js";
import type { Caller } from "./caller.js";
import type { Role } from "./roles.js";

/** Reads one user's role grants in one organisation (expired ones too). */
export type GrantLoader = (organisation: string, userId: string) => Promise<readonly RoleGrant[]>;

/**
 * What a request may rely on to decide permissions: the verified caller, the
 * server's clock, and the caller's role grants, read at most once per
 * request and organisation (and only when the token's role does not settle
 * the question).
 */
export interface Access {
  readonly caller: Caller;
  readonly clock: Clock;
  /** The caller's grants in `organisation`; the first call reads them, later calls share that read. */
  grantsIn(organisation: string): Promise<readonly RoleGrant[]>;
}

/** An Access for one request. Without `loadGrants` the caller has no grants (token roles only). */
export function createAccess(caller: Caller, deps: { readonly loadGrants?: GrantLoader; readonly clock: Clock }): Access {
  const read = new Map<string, Promise<readonly RoleGrant[]>>();
  const { loadGrants, clock } = deps;
  return {
    caller,
    clock,
    grantsIn(organisation) {
      if (loadGrants === undefined) return Promise.resolve([]);
      let grants = read.get(organisation);
      if (grants === undefined) {
        grants = loadGrants(organisation, caller.userId);
        read.set(organisation, grants);
        // A failed read is not remembered: the error goes to this caller only.
        grants.catch(() => read.delete(organisation));
      }
      return grants;
    },
  };
}

/** Set by the auth interceptor next to the caller; handlers read it via `accessOf(ctx)`. */
export const accessKey = createContextKey<Access | undefined>(undefined, {
  description: "the caller's access (token roles and role grants)",
});

/**
 * The caller's effective role in `organisation` at `at` now: the token's role
 * raised by every active grant covering `at`. Reads the grants unless the
 * token already says admin (nothing ranks higher).
 */
export async function effectiveRoleOf(access: Access, organisation: string, at: Location = {}): Promise<Role | undefined> {
  const baseRole = access.caller.orgRoles.get(organisation);
  if (baseRole === "admin") return baseRole;
  return effectiveRole({
    baseRole,
    grants: await access.grantsIn(organisation),
    organisation,
    at,
    now: access.clock.now(),
  });
}

/**
 * The caller as seen at `at`: its role in `organisation` is the effective
 * one there (absent when it has none). Use cases that ask `isAdmin` read this.
 */
export async function callerAt(access: Access, organisation: string, at: Location = {}): Promise<Caller> {
  const role = await effectiveRoleOf(access, organisation, at);
  const base = access.caller.orgRoles.get(organisation);
  if (role === base) return access.caller;
  const orgRoles = new Map(access.caller.orgRoles);
  if (role === undefined) orgRoles.delete(organisation);
  else orgRoles.set(organisation, role);
  return { ...access.caller, orgRoles };
}
