import { type RawBuilder, sql } from "kysely";
import type { DirectoryNeeds, VoterDirectoryRows } from "../approval/voter-directory.js";
import type { ScopeKind } from "../approver/directory.js";
import { environmentScopeId } from "../approver/scope.js";
import { parseRole, ROLES, type Role, roleAtLeast } from "../auth/roles.js";
import type { ProjectRef } from "../policy/policy.js";

/** Columns of one membership, one grant, as the json part returns them (timestamps as ISO strings). */
type MemberJson = [group: string, user: string, display: string, scope: string, scopeId: string, expires: string | null, addedAt: string, addedBy: string, candidate: boolean];
type GrantJson = [id: string, user: string, role: string, scope: string, scopeId: string, expires: string | null, grantedAt: string, grantedBy: string, forRole: string | null];
type GroupJson = [name: string, idpGroup: string | null, createdAt: string, createdBy: string];

export interface VoterDirectoryJson {
  readonly groups: GroupJson[] | null;
  readonly members: MemberJson[] | null;
  readonly grants: GrantJson[] | null;
}

export interface VoterDirectoryReads {
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
  readonly needs: DirectoryNeeds;
  readonly now: Date;
}

/**
 * The directory part of the evaluation's one statement (a json object):
 * the named groups; the memberships of the current voters in them and, per
 * group, the first `candidateLimit` active covering members by id who have
 * not voted and are neither author nor registrant (primary key order); the
 * covering active grants of the voters (index role_grants_org_user) and, per
 * minimum role, the first `candidateLimit` other people by id holding at
 * least that role there (index-only on role_grants_org_scope_user), one grant
 * row each. Bounded by the voters and
 * the limit, not by the size of the groups or of the organisation's grants.
 */
export function voterDirectoryPart(r: VoterDirectoryReads): RawBuilder<unknown> {
  const { organisation, project } = r.project;
  const envScope = environmentScopeId(project, r.environment);
  const voters = sql`(select v.user_id from approval_votes v where v.release_intent_id = ${r.intentId}::uuid and v.environment = ${r.environment})`;
  const parties = sql`(select i.author_user_id from release_intents i where i.id = ${r.intentId}::uuid
                       union all
                       select i.registered_by_user_id from release_intents i
                       where i.id = ${r.intentId}::uuid and i.registered_by_actor_type <> 'service')`;
  const covers = (t: string) =>
    sql`(${sql.ref(`${t}.scope`)} = 'organisation' or (${sql.ref(`${t}.scope`)} = 'project' and ${sql.ref(`${t}.scope_id`)} = ${project})
         or (${sql.ref(`${t}.scope`)} = 'environment' and ${sql.ref(`${t}.scope_id`)} = ${envScope}))`;
  const active = (t: string) => sql`(${sql.ref(`${t}.expires_at`)} is null or ${sql.ref(`${t}.expires_at`)} > ${r.now})`;
  const limit = r.needs.candidateLimit;
  const memberCols = sql`m.group_name, m.user_id, m.display_name, m.scope, m.scope_id, m.expires_at, m.added_at, m.added_by`;
  const memberJson = sql`json_build_array(x.group_name, x.user_id, x.display_name, x.scope, x.scope_id, x.expires_at, x.added_at, x.added_by, x.candidate)`;
  const grantCols = sql`g.id, g.user_id, g.role, g.scope, g.scope_id, g.expires_at, g.granted_at, g.granted_by`;
  const grantJson = sql`json_build_array(x.id, x.user_id, x.role, x.scope, x.scope_id, x.expires_at, x.granted_at, x.granted_by, x.for_role)`;
  const groupNames = r.needs.groups;
  const groupsPart =
    groupNames.length === 0
      ? sql`null::json`
      : sql`(select json_agg(json_build_array(a.name, a.idp_group, a.created_at, a.created_by))
             from approver_groups a where a.organisation = ${organisation} and a.name in (${sql.join(groupNames)}))`;
  const membersPart =
    groupNames.length === 0
      ? sql`null::json`
      : sql`(select json_agg(${memberJson}) from (
               select ${memberCols}, false as candidate from approver_group_members m
               where m.organisation = ${organisation} and m.group_name in (${sql.join(groupNames)}) and m.user_id in ${voters}
               ${sql.join(
                 groupNames.map(
                   (name) => sql`union all (select ${memberCols}, true from approver_group_members m
                     where m.organisation = ${organisation} and m.group_name = ${name} and ${active("m")} and ${covers("m")}
                       and m.user_id not in ${voters} and m.user_id not in ${parties}
                     order by m.user_id limit ${limit})`,
                 ),
                 sql` `,
               )}) x)`;
  const scopeIds = sql.join(["", project, envScope]);
  const grantsPart =
    r.needs.minRoles.length === 0
      ? sql`null::json`
      : sql`(select json_agg(${grantJson}) from (
               select ${grantCols}, null::text as for_role from role_grants g
               where g.organisation = ${organisation} and g.user_id in ${voters} and ${active("g")} and ${covers("g")}
               ${sql.join(
                 r.needs.minRoles.map(
                   (minRole) => {
                     const holds = (t: string) =>
                       sql`${sql.ref(`${t}.organisation`)} = ${organisation} and ${sql.ref(`${t}.scope_id`)} in (${scopeIds})
                           and ${active(t)} and ${covers(t)} and ${sql.ref(`${t}.role`)} in (${sql.join(rolesAtLeast(minRole))})`;
                     // The first ids from the index alone (role_grants_org_scope_user), then one grant row of each.
                     return sql`union all select ${grantCols}, ${minRole}::text from (
                       select distinct c.user_id from role_grants c
                       where ${holds("c")} and c.user_id not in ${voters} and c.user_id not in ${parties}
                       order by c.user_id limit ${limit}) c
                     cross join lateral (select * from role_grants g where g.user_id = c.user_id and ${holds("g")} limit 1) g`;
                   },
                 ),
                 sql` `,
               )}) x)`;
  return sql`json_build_object('groups', ${groupsPart}, 'members', ${membersPart}, 'grants', ${grantsPart})`;
}

function rolesAtLeast(minRole: Role): Role[] {
  return ROLES.filter((role) => roleAtLeast(role, minRole));
}

const scopeOf = (kind: string, id: string) => ({ kind: kind as ScopeKind, id });
const expiry = (at: string | null) => (at === null ? {} : { expiresAt: new Date(at) });

/** The part's json as domain rows; a grant whose role left the ladder grants nothing and is dropped. */
export function voterDirectoryFromJson(organisation: string, json: VoterDirectoryJson): VoterDirectoryRows {
  const groups = (json.groups ?? []).map(([name, idpGroup, createdAt, createdBy]) => ({
    organisation,
    name,
    ...(idpGroup === null ? {} : { idpGroup }),
    createdAt: new Date(createdAt),
    createdBy,
  }));
  const members = (json.members ?? []).map(([groupName, userId, displayName, scope, scopeId, expires, addedAt, addedBy, candidate]) => ({
    member: { organisation, groupName, userId, displayName, scope: scopeOf(scope, scopeId), ...expiry(expires), addedAt: new Date(addedAt), addedBy },
    candidate,
  }));
  const grants: VoterDirectoryRows["grants"][number][] = [];
  for (const [id, userId, roleText, scope, scopeId, expires, grantedAt, grantedBy, forRoleText] of json.grants ?? []) {
    const role = parseRole(roleText);
    if (role === undefined) continue;
    const forRole = parseRole(forRoleText);
    const grant = { id, organisation, userId, role, scope: scopeOf(scope, scopeId), ...expiry(expires), grantedAt: new Date(grantedAt), grantedBy };
    grants.push(forRole === undefined ? { grant } : { grant, forRole });
  }
  return { groups, members, grants };
}
