import type { ApproverGroup, GroupMember, RoleGrant } from "../approver/directory.js";
import type { Role } from "../auth/roles.js";
import type { Policy, ProjectRef } from "../policy/policy.js";
import type { RuleDirectory } from "./eligibility.js";

/**
 * Names of "who may still approve" shown in an evaluation's reason per rule
 * (the rest as "and N more"); ListEligibleApprovers lists everyone.
 */
export const MAY_STILL_APPROVE_SHOWN = 5;

/**
 * What an evaluation reads of the directory for the approval rules of its
 * policies: the named groups, the distinct minimum roles, and how many
 * candidates (people who have not voted) to read per rule at most.
 */
export interface DirectoryNeeds {
  readonly groups: readonly string[];
  readonly minRoles: readonly Role[];
  /**
   * At least one more than the most approvals any one policy's rules need in
   * total (and than MAY_STILL_APPROVE_SHOWN). Enough for exact answers: a
   * rule with more eligible candidates than any assignment can use is met by
   * them whoever else is needed elsewhere, so whether the rules can be met,
   * and the counts named when one cannot, come out as with the full list;
   * its "may still approve" list is the same list cut after the first ids.
   */
  readonly candidateLimit: number;
}

/** Undefined when no policy has rules: nothing of the directory is read. */
export function directoryNeeds(policies: readonly Pick<Policy, "config">[]): DirectoryNeeds | undefined {
  const groups = new Set<string>();
  const minRoles = new Set<Role>();
  let slots = 0;
  for (const p of policies) {
    if (p.config.kind !== "external_approval") continue;
    let policySlots = 0;
    for (const r of p.config.rules ?? []) {
      if ("group" in r) groups.add(r.group);
      else minRoles.add(r.minRole);
      policySlots += r.requiredApprovals;
    }
    slots = Math.max(slots, policySlots);
  }
  if (groups.size === 0 && minRoles.size === 0) return undefined;
  return { groups: [...groups].sort(), minRoles: [...minRoles].sort(), candidateLimit: Math.max(slots, MAY_STILL_APPROVE_SHOWN) + 1 };
}

/**
 * The directory rows an evaluation read: the named groups, the memberships
 * and covering active grants of the current voters, and per group and
 * minimum role up to `candidateLimit` candidates (active, covering, not a
 * voter, author or registrant).
 */
export interface VoterDirectoryRows {
  /** The named groups that exist, with no members attached. */
  readonly groups: readonly Omit<ApproverGroup, "members">[];
  readonly members: readonly { readonly member: GroupMember; readonly candidate: boolean }[];
  /** `forRole`: the minimum role whose candidates the row was read for; undefined for a voter's grant. */
  readonly grants: readonly { readonly grant: RoleGrant; readonly forRole?: Role }[];
}

/**
 * The RuleDirectory that judges the voters exactly and knows the first
 * candidates of each rule; rules whose candidates were cut are in
 * `cappedRules`.
 */
export function voterDirectory(
  rows: VoterDirectoryRows,
  needs: DirectoryNeeds,
  project: ProjectRef,
  environment: string,
  now: Date,
): RuleDirectory {
  const members = new Map<string, GroupMember[]>();
  const candidates = new Map<string, number>();
  for (const { member, candidate } of rows.members) {
    const list = members.get(member.groupName) ?? [];
    list.push(member);
    members.set(member.groupName, list);
    if (candidate) candidates.set(`group:${member.groupName}`, (candidates.get(`group:${member.groupName}`) ?? 0) + 1);
  }
  const grants: RoleGrant[] = [];
  for (const { grant, forRole } of rows.grants) {
    grants.push(grant);
    if (forRole !== undefined) candidates.set(`role:${forRole}`, (candidates.get(`role:${forRole}`) ?? 0) + 1);
  }
  const cappedRules = new Set<string>();
  for (const [label, n] of candidates) if (n >= needs.candidateLimit) cappedRules.add(label);
  return {
    organisation: project.organisation,
    at: { project: project.project, environment },
    now,
    groups: new Map(rows.groups.map((g) => [g.name, { ...g, members: members.get(g.name) ?? [] }])),
    grants,
    cappedRules,
  };
}
