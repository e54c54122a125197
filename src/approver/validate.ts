import { parseRole, ROLES, type Role } from "../auth/roles.js";
import { foldEnvironment, isEnvironmentName } from "../environment/environment-name.js";
import { InvalidArgumentError, quoteInput } from "../errors.js";
import { requireName } from "../policy/validate.js";
import { SCOPE_KINDS, type Scope, type ScopeKind } from "./directory.js";
import { environmentScopeId, ORGANISATION_SCOPE } from "./scope.js";

/** Approver group names: lowercase letters, digits and '-', 1–63 characters, not starting with '-'. */
export const GROUP_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Longest identity-provider group name a group may map to. */
export const IDP_GROUP_MAX = 200;
/** Longest display name of a member. */
export const DISPLAY_NAME_MAX = 200;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A group name, or INVALID_ARGUMENT naming `field`. */
export function requireGroupName(value: string, field: string): string {
  if (value === "") throw new InvalidArgumentError(field, "is required");
  if (!GROUP_NAME_PATTERN.test(value))
    throw new InvalidArgumentError(
      field,
      `${quoteInput(value)} is not a valid group name: use 1-63 characters a-z, 0-9 or '-', starting with a letter or digit`,
    );
  return value;
}

/** An optional identity-provider group name (empty: none). */
export function optionalIdpGroup(value: string, field: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > IDP_GROUP_MAX) throw new InvalidArgumentError(field, `must be at most ${IDP_GROUP_MAX} characters`);
  if (CONTROL.test(value)) throw new InvalidArgumentError(field, "must not contain control characters");
  return value;
}

/** A user id (a token subject). */
export function requireUserId(value: string, field: string): string {
  return requireName(value, field);
}

/** An optional display name; defaults to `fallback`. */
export function optionalDisplayName(value: string, field: string, fallback: string): string {
  if (value === "") return fallback;
  if (value.length > DISPLAY_NAME_MAX)
    throw new InvalidArgumentError(field, `must be at most ${DISPLAY_NAME_MAX} characters`);
  if (CONTROL.test(value)) throw new InvalidArgumentError(field, "must not contain control characters");
  return value;
}

/** A role of the ladder; anything else is INVALID_ARGUMENT listing the ladder. */
export function requireRole(value: string, field: string): Role {
  if (value === "") throw new InvalidArgumentError(field, `is required: one of ${ROLES.join(", ")}`);
  const role = parseRole(value);
  if (role === undefined)
    throw new InvalidArgumentError(field, `${quoteInput(value)} is not a role: use one of ${ROLES.join(", ")}`);
  return role;
}

/**
 * A scope from its wire fields (`scope`, `scope_id`): organisation without an
 * id, project with a project name, environment with `project/environment`
 * (the environment folded to lowercase ASCII).
 */
export function requireScope(kind: string, scopeId: string, noun: "grant" | "membership" = "grant"): Scope {
  const fields = { scope: "scope", scopeId: "scope_id" };
  if (kind === "") throw new InvalidArgumentError(fields.scope, `is required: one of ${SCOPE_KINDS.join(", ")}`);
  if (!SCOPE_KINDS.includes(kind as ScopeKind))
    throw new InvalidArgumentError(
      fields.scope,
      `${quoteInput(kind)} is not a scope: use one of ${SCOPE_KINDS.join(", ")}`,
    );
  switch (kind as ScopeKind) {
    case "organisation":
      if (scopeId !== "")
        throw new InvalidArgumentError(fields.scopeId, `must be empty for an organisation-wide ${noun}`);
      return ORGANISATION_SCOPE;
    case "project":
      if (scopeId === "") throw new InvalidArgumentError(fields.scopeId, `is required for a project ${noun}`);
      if (scopeId.includes("/"))
        throw new InvalidArgumentError(fields.scopeId, `must be a project name (no '/') for a project ${noun}`);
      return { kind: "project", id: requireName(scopeId, fields.scopeId) };
    case "environment": {
      if (scopeId === "") throw new InvalidArgumentError(fields.scopeId, `is required for an environment ${noun}`);
      const slash = scopeId.lastIndexOf("/");
      const project = slash < 0 ? "" : scopeId.slice(0, slash);
      // Environment names are case-insensitive: folded like every environment field.
      const environment = foldEnvironment(slash < 0 ? "" : scopeId.slice(slash + 1));
      if (project === "" || project.includes("/") || !isEnvironmentName(environment))
        throw new InvalidArgumentError(
          fields.scopeId,
          `must be project/environment for an environment ${noun} (environment: 1-63 characters a-z, 0-9, '.', '_' or '-'), got ${quoteInput(scopeId)}`,
        );
      return { kind: "environment", id: environmentScopeId(requireName(project, fields.scopeId), environment) };
    }
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** An optional expiry: empty is none; else an RFC 3339 time after `now`. */
export function optionalExpiry(value: string, field: string, now: Date): Date | undefined {
  if (value === "") return undefined;
  const at = new Date(value);
  if (!RFC3339.test(value) || Number.isNaN(at.getTime()))
    throw new InvalidArgumentError(field, "must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z");
  if (at.getTime() <= now.getTime()) throw new InvalidArgumentError(field, "must be in the future");
  return at;
}
