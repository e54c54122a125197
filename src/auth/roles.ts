/**
 * The role ladder, in one place: `viewer` < `member` < `maintainer` < `admin`.
 *
 * - `viewer`: reads only (list, get, evaluate, history, watch); cannot vote or register intents.
 * - `member`: also registers intents and votes.
 * - `maintainer`: also records deployments.
 * - `admin`: also manages policies, declared environments, the approver directory, and may bypass.
 *
 * A role string outside the ladder (from a token or anywhere else) is no role
 * at all: it grants nothing and is never an error.
 */
export const ROLES = ["viewer", "member", "maintainer", "admin"] as const;

/** A rung of the ladder. */
export type Role = (typeof ROLES)[number];

const LEVEL: Readonly<Record<Role, number>> = { viewer: 0, member: 1, maintainer: 2, admin: 3 };

/** The role named by `value`, or undefined for anything outside the ladder (case-sensitive). */
export function parseRole(value: unknown): Role | undefined {
  return typeof value === "string" && Object.hasOwn(LEVEL, value) ? (value as Role) : undefined;
}

/** The rung of `role`: viewer 0, member 1, maintainer 2, admin 3. */
export function roleLevel(role: Role): number {
  return LEVEL[role];
}

/** Negative when `a` is below `b`, 0 when equal, positive when above. */
export function compareRoles(a: Role, b: Role): number {
  return LEVEL[a] - LEVEL[b];
}

/** True when `role` is at least `required`; an absent role satisfies nothing. */
export function roleAtLeast(role: Role | undefined, required: Role): boolean {
  return role !== undefined && LEVEL[role] >= LEVEL[required];
}

/** The higher of two roles; an absent role is below every rung. */
export function maxRole(a: Role | undefined, b: Role | undefined): Role | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return LEVEL[a] >= LEVEL[b] ? a : b;
}
