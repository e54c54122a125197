import { isEligible, type RuleDirectory } from "../approval/eligibility.js";
import { approvalPoliciesFor } from "../approval/rules.js";
import type { ApproverGroup, Location, RoleGrant } from "../approver/directory.js";
import { effectiveRole } from "../approver/effective-role.js";
import { isActiveAt } from "../approver/scope.js";
import { type Role, roleAtLeast } from "../auth/roles.js";
import type { Policy } from "../policy/policy.js";

/**
 * The least role a person needs to vote (src/auth/permissions.ts,
 * `approval.vote` for users): an inbox lists only what its owner may vote on.
 */
export const VOTE_ROLE: Role = "member";

/** Whose inbox it is: the caller's id, token facts, and their own role grants in the organisation. */
export interface InboxViewer {
  readonly organisation: string;
  readonly userId: string;
  /** The role the token gives in the organisation (undefined: none). */
  readonly tokenRole?: Role;
  readonly idpGroups: readonly string[];
  /** The viewer's role grants in the organisation (expired ones too: judged at `now`). */
  readonly grants: readonly RoleGrant[];
}

/**
 * True when the viewer may have an inbox under `filter` at all: a member
 * (or higher) by token, or holding an active grant of at least member whose
 * scope could cover a request under the filter. Viewers and outsiders have
 * none (PERMISSION_DENIED in the handler).
 */
export function mayHaveInbox(viewer: InboxViewer, filter: Location, now: Date): boolean {
  if (roleAtLeast(viewer.tokenRole, VOTE_ROLE)) return true;
  return viewer.grants.some(
    (g) =>
      g.organisation === viewer.organisation &&
      isActiveAt(g, now) &&
      roleAtLeast(g.role, VOTE_ROLE) &&
      scopeCouldCover(g.scope, filter),
  );
}

/** Whether some request under `filter` could lie inside `scope` (an unset filter matches anything). */
function scopeCouldCover(scope: RoleGrant["scope"], filter: Location): boolean {
  if (scope.kind === "organisation") return true;
  const project = scope.kind === "project" ? scope.id : scope.id.slice(0, scope.id.indexOf("/"));
  if (filter.project !== undefined && filter.project !== project) return false;
  if (scope.kind === "environment" && filter.environment !== undefined)
    return scope.id === `${project}/${filter.environment}`;
  return true;
}

/**
 * The viewer's part of a rule directory at one project and environment:
 * the groups the rules name and the viewer's own grants are all that
 * `isEligible` reads for this one person.
 */
export function viewerDirectory(
  viewer: InboxViewer,
  groups: ReadonlyMap<string, ApproverGroup>,
  at: { readonly project: string; readonly environment: string },
  now: Date,
): RuleDirectory {
  return { organisation: viewer.organisation, at, now, groups, grants: viewer.grants };
}

/**
 * Whether the viewer may approve a request at `dir.at`: some enabled
 * approval policy gates the environment, the viewer's effective role there
 * lets them vote, and either a gate policy has no rules (anyone who may vote
 * counts, as cast-vote.ts takes such a vote) or the viewer is eligible for at
 * least one rule. The four-eyes parties and earlier voters are excluded per
 * request by the query, not here.
 */
export function mayApproveAt(policies: readonly Policy[], viewer: InboxViewer, dir: RuleDirectory): boolean {
  const gate = approvalPoliciesFor(policies, dir.at.environment ?? "");
  if (gate.length === 0) return false;
  const role = effectiveRole({
    baseRole: viewer.tokenRole,
    grants: viewer.grants,
    organisation: viewer.organisation,
    at: dir.at,
    now: dir.now,
  });
  if (!roleAtLeast(role, VOTE_ROLE)) return false;
  const voter = { userId: viewer.userId, idpGroups: viewer.idpGroups, ...(viewer.tokenRole ? { tokenRole: viewer.tokenRole } : {}) };
  for (const p of gate) {
    if (p.config.kind !== "external_approval") continue;
    const rules = p.config.rules ?? [];
    if (rules.length === 0) return true;
    if (rules.some((r) => isEligible(r, voter, dir))) return true;
  }
  return false;
}

/** The group names the approval rules of `policies` name (what the directory must read). */
export function ruleGroupNames(policies: readonly Policy[]): string[] {
  const names = new Set<string>();
  for (const p of policies)
    if (p.enabled && p.config.kind === "external_approval")
      for (const r of p.config.rules ?? []) if ("group" in r) names.add(r.group);
  return [...names].sort();
}
