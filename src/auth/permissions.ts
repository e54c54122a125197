import { PermissionDeniedError } from "../errors.js";
import type { Caller } from "./caller.js";

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
  | "environment.write";

/**
 * Who may do what. Members read, evaluate, register intents and vote; admins
 * also manage policies and record deployments; services (pipelines) read,
 * evaluate, register intents and record deployments, but never vote. Only
 * admins declare a project's environments; anyone in the organisation reads
 * them. Only admins (people) break the glass of an approval gate.
 */
const RULES: Record<Action, (c: { role: "member" | "admin"; service: boolean }) => boolean> = {
  "policy.read": () => true,
  "policy.write": ({ role }) => role === "admin",
  "policy.evaluate": () => true,
  "intent.register": () => true,
  "intent.read": () => true,
  "deployment.record": ({ role, service }) => service || role === "admin",
  "approval.vote": ({ service }) => !service,
  "approval.read": () => true,
  "approval.break_glass": ({ role, service }) => !service && role === "admin",
  "environment.read": () => true,
  "environment.write": ({ role, service }) => !service && role === "admin",
};

/** Throws PermissionDeniedError unless the caller may do `action` in `organisation`. */
export function authorize(caller: Caller, organisation: string, action: Action): void {
  const role = caller.orgRoles.get(organisation);
  if (role === undefined)
    throw new PermissionDeniedError(`caller ${caller.userId} has no role in organisation ${organisation}`);
  if (!RULES[action]({ role, service: caller.actorType === "service" }))
    throw new PermissionDeniedError(
      `${caller.actorType === "service" ? "service account" : role} ${caller.userId} may not ${action} in organisation ${organisation}`,
    );
}

export function isAdmin(caller: Caller, organisation: string): boolean {
  return caller.orgRoles.get(organisation) === "admin";
}
