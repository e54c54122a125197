import type { ApproverGroup, Location, RoleGrant } from "../approver/directory.js";
import { effectiveRole } from "../approver/effective-role.js";
import { isActiveAt, scopeCovers } from "../approver/scope.js";
import { type Role, roleAtLeast } from "../auth/roles.js";
import type { ApprovalRule } from "../policy/policy.js";

/**
 * What approval rules are judged against, read for one project and
 * environment at one moment. Pure data: the caller loads it.
 */
export interface RuleDirectory {
  readonly organisation: string;
  /** The project and environment the votes are for. */
  readonly at: Location;
  /** The moment of judgement (the server's clock): memberships and grants stop counting at `expires_at`. */
  readonly now: Date;
  /** The organisation's groups the rules name, by name, with their members (expired ones too). */
  readonly groups: ReadonlyMap<string, ApproverGroup>;
  /** The organisation's role grants (expired ones too); empty when no rule names a role. */
  readonly grants: readonly RoleGrant[];
  /**
   * Rules (`group:sre`, `role:maintainer`) for which only the first of the
   * people who have not voted were read (an evaluation reads the voters
   * fully and a capped list of candidates, see voter-directory.ts): their
   * "may still approve" lists are cut, and say so as open-ended.
   */
  readonly cappedRules?: ReadonlySet<string>;
}

/** What a voter brings: their id, and what their token said when they voted. */
export interface VoterFacts {
  readonly userId: string;
  /** Role the token gave in the organisation (undefined: none, or a person known only from the directory). */
  readonly tokenRole?: Role;
  /** Identity-provider groups from the token (empty when none, or not known). */
  readonly idpGroups: readonly string[];
}

/** True when a directory membership makes `userId` a member of `group` here and now. */
function isManagedMember(group: ApproverGroup, userId: string, dir: RuleDirectory): boolean {
  return group.members.some((m) => m.userId === userId && isActiveAt(m, dir.now) && scopeCovers(m.scope, dir.at));
}

/**
 * Whether `voter` may count for `rule`: for a group rule, an active
 * membership whose scope covers the project/environment, or the group's
 * identity-provider group among the voter's token groups; for a role rule,
 * an effective role (token role raised by active covering grants) at least
 * `min_role`. A group that does not exist has no members.
 */
export function isEligible(rule: ApprovalRule, voter: VoterFacts, dir: RuleDirectory): boolean {
  if ("group" in rule) {
    const group = dir.groups.get(rule.group);
    if (group === undefined) return false;
    if (group.idpGroup !== undefined && voter.idpGroups.includes(group.idpGroup)) return true;
    return isManagedMember(group, voter.userId, dir);
  }
  const grants = dir.grants.filter((g) => g.userId === voter.userId);
  const role = effectiveRole({ baseRole: voter.tokenRole, grants, organisation: dir.organisation, at: dir.at, now: dir.now });
  return roleAtLeast(role, rule.minRole);
}

/** True when people outside the directory may be eligible: an idp-mapped group, or any role rule (tokens carry roles). */
export function isOpenEnded(rule: ApprovalRule, dir: RuleDirectory): boolean {
  if ("group" in rule) return dir.groups.get(rule.group)?.idpGroup !== undefined;
  return true;
}

/**
 * The people the directory knows may be eligible for `rule` now (active
 * covering members; holders of active covering grants of at least the role),
 * sorted by id.
 */
export function knownEligible(rule: ApprovalRule, dir: RuleDirectory): string[] {
  const ids = new Set<string>();
  if ("group" in rule) {
    const group = dir.groups.get(rule.group);
    for (const m of group?.members ?? []) if (isActiveAt(m, dir.now) && scopeCovers(m.scope, dir.at)) ids.add(m.userId);
  } else {
    for (const g of dir.grants)
      if (
        g.organisation === dir.organisation &&
        isActiveAt(g, dir.now) &&
        scopeCovers(g.scope, dir.at) &&
        roleAtLeast(g.role, rule.minRole)
      )
        ids.add(g.userId);
  }
  return [...ids].sort();
}

/**
 * What would make someone eligible for one of `rules`, for refusals and
 * lapse notes: "join group sre or security, or hold role maintainer in acme/web".
 */
export function whatMakesEligible(rules: readonly ApprovalRule[], where: string): string {
  const groups: string[] = [];
  const roles: string[] = [];
  for (const r of rules) {
    if ("group" in r) {
      if (!groups.includes(r.group)) groups.push(r.group);
    } else if (!roles.includes(r.minRole)) roles.push(r.minRole);
  }
  const parts: string[] = [];
  if (groups.length > 0) parts.push(`join group ${groups.join(" or ")}`);
  if (roles.length > 0) parts.push(`hold role ${roles.join(" or ")} in ${where}`);
  return parts.join(", or ");
}

/** Why an approval no longer counts for any of `rules`: "no longer a member of sre". */
export function whyNotEligible(rules: readonly ApprovalRule[]): string {
  const groups = rules.flatMap((r) => ("group" in r ? [r.group] : []));
  const roles = rules.flatMap((r) => ("minRole" in r ? [r.minRole] : []));
  const parts: string[] = [];
  if (groups.length > 0) parts.push(`no longer a member of ${groups.join(" or ")}`);
  if (roles.length > 0) parts.push(`no longer holds role ${roles.join(" or ")}`);
  return parts.join(" and ");
}
