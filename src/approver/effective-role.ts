import { maxRole, type Role } from "../auth/roles.js";
import type { Location, RoleGrant } from "./directory.js";
import { isActiveAt, scopeCovers } from "./scope.js";

/**
 * The effective role at (organisation, `at`) and time `now`: the highest of
 * the token's base role and every grant of `grants` in `organisation` that is
 * active at `now` and whose scope covers `at`. Undefined: no role at all.
 * Grants to other organisations never count.
 */
export function effectiveRole(input: {
  readonly baseRole: Role | undefined;
  readonly grants: readonly RoleGrant[];
  readonly organisation: string;
  readonly at: Location;
  readonly now: Date;
}): Role | undefined {
  let role = input.baseRole;
  for (const g of input.grants) {
    if (g.organisation !== input.organisation || !isActiveAt(g, input.now) || !scopeCovers(g.scope, input.at)) continue;
    role = maxRole(role, g.role);
  }
  return role;
}
