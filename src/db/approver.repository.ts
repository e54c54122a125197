import type { Kysely, Selectable, Transaction } from "kysely";
import type { ApproverGroup, GroupMember, RoleGrant, Scope, ScopeKind } from "../approver/directory.js";
import { environmentScopeId } from "../approver/scope.js";
import { parseRole } from "../auth/roles.js";
import type { ApproverGroupMembersTable, ApproverGroupsTable, DB, RoleGrantsTable } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

function toScope(kind: string, id: string): Scope {
  return { kind: kind as ScopeKind, id };
}

function toMember(row: Selectable<ApproverGroupMembersTable>): GroupMember {
  return {
    organisation: row.organisation,
    groupName: row.group_name,
    userId: row.user_id,
    displayName: row.display_name,
    scope: toScope(row.scope, row.scope_id),
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
    addedAt: row.added_at,
    addedBy: row.added_by,
  };
}

function toGroup(row: Selectable<ApproverGroupsTable>, members: readonly GroupMember[]): ApproverGroup {
  return {
    organisation: row.organisation,
    name: row.name,
    ...(row.idp_group === null ? {} : { idpGroup: row.idp_group }),
    createdAt: row.created_at,
    createdBy: row.created_by,
    members,
  };
}

/** Rows whose role left the ladder (none are written so) grant nothing: they are dropped. */
function toGrants(rows: readonly Selectable<RoleGrantsTable>[]): RoleGrant[] {
  const grants: RoleGrant[] = [];
  for (const row of rows) {
    const role = parseRole(row.role);
    if (role === undefined) continue;
    grants.push({
      id: row.id,
      organisation: row.organisation,
      userId: row.user_id,
      role,
      scope: toScope(row.scope, row.scope_id),
      ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
      grantedAt: row.granted_at,
      grantedBy: row.granted_by,
    });
  }
  return grants;
}

/** Inserts a group unless one of that name exists in the organisation; false when it did. */
export async function insertGroup(db: Db, group: Omit<ApproverGroup, "members">): Promise<boolean> {
  const inserted = await db
    .insertInto("approver_groups")
    .values({
      organisation: group.organisation,
      name: group.name,
      idp_group: group.idpGroup ?? null,
      created_at: group.createdAt,
      created_by: group.createdBy,
    })
    .onConflict((oc) => oc.columns(["organisation", "name"]).doNothing())
    .returning("name")
    .executeTakeFirst();
  return inserted !== undefined;
}

/** Deletes a group and (cascade) its memberships; false when there was none. */
export async function deleteGroup(db: Db, organisation: string, name: string): Promise<boolean> {
  const deleted = await db
    .deleteFrom("approver_groups")
    .where("organisation", "=", organisation)
    .where("name", "=", name)
    .returning("name")
    .executeTakeFirst();
  return deleted !== undefined;
}

/** The organisation's groups by name (all of them, or those in `names`), each with its members (expired ones too). */
export async function listGroups(
  db: Db,
  organisation: string,
  names?: readonly string[],
): Promise<ApproverGroup[]> {
  if (names !== undefined && names.length === 0) return [];
  let groups = db.selectFrom("approver_groups").selectAll().where("organisation", "=", organisation);
  let members = db.selectFrom("approver_group_members").selectAll().where("organisation", "=", organisation);
  if (names !== undefined) {
    groups = groups.where("name", "in", names);
    members = members.where("group_name", "in", names);
  }
  const [groupRows, memberRows] = await Promise.all([
    groups.orderBy("name").execute(),
    members.orderBy("group_name").orderBy("user_id").execute(),
  ]);
  const byGroup = new Map<string, GroupMember[]>();
  for (const row of memberRows) {
    const list = byGroup.get(row.group_name) ?? [];
    list.push(toMember(row));
    byGroup.set(row.group_name, list);
  }
  return groupRows.map((row) => toGroup(row, byGroup.get(row.name) ?? []));
}

/** One group with its members, or undefined. */
export async function findGroup(db: Db, organisation: string, name: string): Promise<ApproverGroup | undefined> {
  return (await listGroups(db, organisation, [name]))[0];
}

/**
 * Adds a member, or replaces the user's membership of that group (display
 * name, scope, expiry). The group must exist (foreign key: SQLSTATE 23503).
 */
export async function upsertGroupMember(db: Db, member: GroupMember): Promise<GroupMember> {
  const values = {
    organisation: member.organisation,
    group_name: member.groupName,
    user_id: member.userId,
    display_name: member.displayName,
    scope: member.scope.kind,
    scope_id: member.scope.id,
    expires_at: member.expiresAt ?? null,
    added_at: member.addedAt,
    added_by: member.addedBy,
  };
  const row = await db
    .insertInto("approver_group_members")
    .values(values)
    .onConflict((oc) =>
      oc.columns(["organisation", "group_name", "user_id"]).doUpdateSet({
        display_name: values.display_name,
        scope: values.scope,
        scope_id: values.scope_id,
        expires_at: values.expires_at,
        added_at: values.added_at,
        added_by: values.added_by,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  return toMember(row);
}

/** Removes a user's membership of a group; false when there was none. */
export async function deleteGroupMember(
  db: Db,
  organisation: string,
  groupName: string,
  userId: string,
): Promise<boolean> {
  const deleted = await db
    .deleteFrom("approver_group_members")
    .where("organisation", "=", organisation)
    .where("group_name", "=", groupName)
    .where("user_id", "=", userId)
    .returning("user_id")
    .executeTakeFirst();
  return deleted !== undefined;
}

/** The memberships (expired ones too) of the given users in the organisation's groups, by group then user. */
export async function listMembershipsOfUsers(
  db: Db,
  organisation: string,
  userIds: readonly string[],
): Promise<GroupMember[]> {
  if (userIds.length === 0) return [];
  const rows = await db
    .selectFrom("approver_group_members")
    .selectAll()
    .where("organisation", "=", organisation)
    .where("user_id", "in", userIds)
    .orderBy("group_name")
    .orderBy("user_id")
    .execute();
  return rows.map(toMember);
}

/** Stores a new grant (its id chosen by the caller). */
export async function insertGrant(db: Db, grant: RoleGrant): Promise<RoleGrant> {
  const row = await db
    .insertInto("role_grants")
    .values({
      id: grant.id,
      organisation: grant.organisation,
      user_id: grant.userId,
      role: grant.role,
      scope: grant.scope.kind,
      scope_id: grant.scope.id,
      expires_at: grant.expiresAt ?? null,
      granted_at: grant.grantedAt,
      granted_by: grant.grantedBy,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toGrants([row])[0]!;
}

/** Deletes a grant of the organisation by id; false when the organisation has no such grant. */
export async function deleteGrant(db: Db, organisation: string, id: string): Promise<boolean> {
  const deleted = await db
    .deleteFrom("role_grants")
    .where("organisation", "=", organisation)
    .where("id", "=", id)
    .returning("id")
    .executeTakeFirst();
  return deleted !== undefined;
}

/** The organisation's grants (expired ones too), of one user when `userId` is given; oldest first. */
export async function listGrants(db: Db, organisation: string, userId?: string): Promise<RoleGrant[]> {
  let q = db.selectFrom("role_grants").selectAll().where("organisation", "=", organisation);
  if (userId !== undefined) q = q.where("user_id", "=", userId);
  return toGrants(await q.orderBy("granted_at").orderBy("id").execute());
}

/**
 * The grants of one user in one organisation (expired ones too: the reader
 * judges them with its clock). The per-request authorisation read; served by
 * index role_grants_org_user.
 */
export async function listGrantsOfUser(db: Db, organisation: string, userId: string): Promise<RoleGrant[]> {
  return toGrants(
    await db
      .selectFrom("role_grants")
      .selectAll()
      .where("organisation", "=", organisation)
      .where("user_id", "=", userId)
      .execute(),
  );
}

/**
 * The grants that can count at `project`/`environment` at `now`: not expired
 * and scoped to the organisation, the project or that project+environment
 * (index role_grants_org_scope_expiry). What role rules read per evaluation
 * and vote: bounded by the grants that matter there, not by the organisation's
 * whole grant history.
 */
export async function listGrantsCovering(
  db: Db,
  organisation: string,
  project: string,
  environment: string,
  now: Date,
): Promise<RoleGrant[]> {
  return toGrants(
    await db
      .selectFrom("role_grants")
      .selectAll()
      .where("organisation", "=", organisation)
      .where("scope_id", "in", ["", project, environmentScopeId(project, environment)])
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .orderBy("granted_at")
      .orderBy("id")
      .execute(),
  );
}

/** The grants of several users in one organisation (eligibility of many voters at once). */
export async function listGrantsOfUsers(
  db: Db,
  organisation: string,
  userIds: readonly string[],
): Promise<RoleGrant[]> {
  if (userIds.length === 0) return [];
  return toGrants(
    await db
      .selectFrom("role_grants")
      .selectAll()
      .where("organisation", "=", organisation)
      .where("user_id", "in", userIds)
      .execute(),
  );
}
