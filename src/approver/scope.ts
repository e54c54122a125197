import type { Expiring, Location, Scope } from "./directory.js";

/** The organisation-wide scope. */
export const ORGANISATION_SCOPE: Scope = { kind: "organisation", id: "" };

/** The scope id of an environment scope: `project/environment`. */
export function environmentScopeId(project: string, environment: string): string {
  return `${project}/${environment}`;
}

/**
 * True when `scope` covers a request at `at`: an organisation scope covers
 * everything in the organisation, a project scope every environment of that
 * project (and the project itself), an environment scope only that
 * project+environment. A request without a project is covered only by the
 * organisation scope.
 */
export function scopeCovers(scope: Scope, at: Location): boolean {
  switch (scope.kind) {
    case "organisation":
      return true;
    case "project":
      return at.project !== undefined && scope.id === at.project;
    case "environment":
      return (
        at.project !== undefined &&
        at.environment !== undefined &&
        scope.id === environmentScopeId(at.project, at.environment)
      );
  }
}

/** True while `x` has not expired at `now`: it stops counting at `expiresAt` exactly. */
export function isActiveAt(x: Expiring, now: Date): boolean {
  return x.expiresAt === undefined || now.getTime() < x.expiresAt.getTime();
}

/** A scope as people read it: `organisation`, `project acme/web` style ids left to the caller. */
export function describeScope(scope: Scope): string {
  return scope.kind === "organisation" ? "organisation" : `${scope.kind} ${scope.id}`;
}
