import type { Location } from "../approver/directory.js";
import { PermissionDeniedError } from "../errors.js";
import { type Access, effectiveRoleOf } from "./access.js";
import type { Caller } from "./caller.js";
import { type Role, roleAtLeast } from "./roles.js";

/** What a caller wants to do in an organisation. */
export type Action =
  | "policy.read"
  | "policy.write"
  | "policy.evaluate"
  | "intent.register"
  | "intent.read"
  | "deployment.record"
  | "approval.vote"
  | "approval.read"
  | "approval.break_glass"
  | "environment.read"
  | "environment.write"
  | "directory.read"
  | "directory.write"
  | "webhook.read"
  | "webhook.write";

/** No role is enough (services never vote). */
type Never = "never";

/**
 * The least effective role each action needs, for people and for services.
 * People climb the ladder (src/auth/roles.ts): viewers read, members also
 * register intents and vote, maintainers also record deployments, admins
 * also manage policies, declared environments and the directory, and
 * only organisation admins break the glass of an approval gate. Services (pipelines) keep the rules
 * they always had whatever their role: any role reads, evaluates, registers
 * intents and records deployments; admin-only stays admin-only; never vote
 * and never declare environments (a person's decision).
 */
const NEEDS: Readonly<Record<Action, { readonly user: Role; readonly service: Role | Never }>> = {
  "policy.read": { user: "viewer", service: "viewer" },
  "policy.write": { user: "admin", service: "admin" },
  "policy.evaluate": { user: "viewer", service: "viewer" },
  "intent.register": { user: "member", service: "viewer" },
  "intent.read": { user: "viewer", service: "viewer" },
  "deployment.record": { user: "maintainer", service: "viewer" },
  "approval.vote": { user: "member", service: "never" },
  "approval.read": { user: "viewer", service: "viewer" },
  "approval.break_glass": { user: "admin", service: "never" },
  "environment.read": { user: "viewer", service: "viewer" },
  "environment.write": { user: "admin", service: "never" },
  "directory.read": { user: "viewer", service: "viewer" },
  "directory.write": { user: "admin", service: "admin" },
  // Subscriptions name where events go: reading them is admin-only too.
  "webhook.read": { user: "admin", service: "admin" },
  "webhook.write": { user: "admin", service: "admin" },
};


function denied(caller: Caller, role: Role, action: Action, organisation: string): PermissionDeniedError {
  const who = caller.actorType === "service" ? `service account ${caller.userId}` : `${role} ${caller.userId}`;
  return new PermissionDeniedError(`${who} may not ${action} in organisation ${organisation}`);
}

/**
 * Throws PermissionDeniedError unless the caller's effective role in
 * `organisation` at `at` (project, environment; default organisation-wide)
 * allows `action`. The caller's grants are read only when the token's role
 * alone does not allow it (the effective role is never below the token's).
 */
export async function authorize(access: Access, organisation: string, action: Action, at: Location = {}): Promise<void> {
  const { caller } = access;
  const needs = NEEDS[action];
  const required = caller.actorType === "service" ? needs.service : needs.user;
  const base = caller.orgRoles.get(organisation);
  if (required !== "never" && roleAtLeast(base, required)) return;
  const role = required === "never" && base !== undefined ? base : await effectiveRoleOf(access, organisation, at);
  if (role === undefined)
    throw new PermissionDeniedError(`caller ${caller.userId} has no role in organisation ${organisation}`);
  if (required === "never" || !roleAtLeast(role, required)) throw denied(caller, role, action, organisation);
}

/** True when the caller's role in `organisation`, as `caller` carries it, is admin (see callerAt for grants). */
export function isAdmin(caller: Caller, organisation: string): boolean {
  return caller.orgRoles.get(organisation) === "admin";
}
