import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { ApproverGroup, GroupMember, RoleGrant } from "../approver/directory.js";
import { createManageDirectory } from "../approver/manage-directory.js";
import { isActiveAt } from "../approver/scope.js";
import {
  optionalDisplayName,
  optionalExpiry,
  optionalIdpGroup,
  requireGroupName,
  requireRole,
  requireScope,
  requireUserId,
} from "../approver/validate.js";
import { authorize } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import type { DB } from "../db/schema.js";
import {
  AddGroupMemberResponseSchema,
  type ApproverGroup as ApproverGroupMsg,
  ApproverGroupSchema,
  type ApproverService,
  CreateApproverGroupResponseSchema,
  DeleteApproverGroupResponseSchema,
  GrantRoleResponseSchema,
  type GroupMember as GroupMemberMsg,
  GroupMemberSchema,
  ListApproverGroupsResponseSchema,
  ListRoleGrantsResponseSchema,
  RemoveGroupMemberResponseSchema,
  RevokeRoleGrantResponseSchema,
  type RoleGrant as RoleGrantMsg,
  RoleGrantSchema,
} from "../gen/releasegate/v1/approver_pb.js";
import { requireName, requireUuid } from "../policy/validate.js";
import { accessOf } from "./context.js";
import { rfc3339 } from "./convert.js";

export interface ApproverServiceDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
}

function memberToProto(m: GroupMember, now: Date): GroupMemberMsg {
  return create(GroupMemberSchema, {
    userId: m.userId,
    displayName: m.displayName,
    scope: m.scope.kind,
    scopeId: m.scope.id,
    expiresAt: m.expiresAt === undefined ? "" : rfc3339(m.expiresAt),
    active: isActiveAt(m, now),
    addedAt: rfc3339(m.addedAt),
    addedBy: m.addedBy,
  });
}

function groupToProto(g: ApproverGroup, now: Date): ApproverGroupMsg {
  return create(ApproverGroupSchema, {
    organisation: g.organisation,
    name: g.name,
    idpGroup: g.idpGroup ?? "",
    members: g.members.map((m) => memberToProto(m, now)),
    createdAt: rfc3339(g.createdAt),
    createdBy: g.createdBy,
  });
}

function grantToProto(g: RoleGrant, now: Date): RoleGrantMsg {
  return create(RoleGrantSchema, {
    id: g.id,
    organisation: g.organisation,
    userId: g.userId,
    role: g.role,
    scope: g.scope.kind,
    scopeId: g.scope.id,
    expiresAt: g.expiresAt === undefined ? "" : rfc3339(g.expiresAt),
    active: isActiveAt(g, now),
    grantedAt: rfc3339(g.grantedAt),
    grantedBy: g.grantedBy,
  });
}

const requireOrganisation = (value: string) => requireName(value, "organisation");

/**
 * releasegate.v1.ApproverService: groups, memberships and role grants.
 * Writes need the organisation admin role (effective, organisation-wide);
 * reads any role. Each handler: validate → authorize → use case → convert.
 */
export function createApproverHandlers(deps: ApproverServiceDeps): ServiceImpl<typeof ApproverService> {
  const directory = createManageDirectory(deps);
  const { clock } = deps;
  return {
    async createApproverGroup(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const name = requireGroupName(req.name, "name");
      const idpGroup = optionalIdpGroup(req.idpGroup, "idp_group");
      const access = accessOf(ctx);
      await authorize(access, organisation, "directory.write");
      const group = await directory.createGroup({ caller: access.caller, organisation, name, idpGroup });
      return create(CreateApproverGroupResponseSchema, { group: groupToProto(group, clock.now()) });
    },

    async deleteApproverGroup(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const name = requireGroupName(req.name, "name");
      await authorize(accessOf(ctx), organisation, "directory.write");
      await directory.deleteGroup(organisation, name);
      return create(DeleteApproverGroupResponseSchema, {});
    },

    async listApproverGroups(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      await authorize(accessOf(ctx), organisation, "directory.read");
      const groups = await directory.listGroups(organisation);
      const now = clock.now();
      return create(ListApproverGroupsResponseSchema, { groups: groups.map((g) => groupToProto(g, now)) });
    },

    async addGroupMember(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const group = requireGroupName(req.group, "group");
      const userId = requireUserId(req.userId, "user_id");
      const displayName = optionalDisplayName(req.displayName, "display_name", userId);
      const scope = requireScope(req.scope, req.scopeId, "membership");
      const expiresAt = optionalExpiry(req.expiresAt, "expires_at", clock.now());
      const access = accessOf(ctx);
      await authorize(access, organisation, "directory.write");
      const member = await directory.addMember({
        caller: access.caller,
        organisation,
        group,
        userId,
        displayName,
        scope,
        expiresAt,
      });
      return create(AddGroupMemberResponseSchema, { member: memberToProto(member, clock.now()) });
    },

    async removeGroupMember(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const group = requireGroupName(req.group, "group");
      const userId = requireUserId(req.userId, "user_id");
      await authorize(accessOf(ctx), organisation, "directory.write");
      await directory.removeMember(organisation, group, userId);
      return create(RemoveGroupMemberResponseSchema, {});
    },

    async grantRole(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const userId = requireUserId(req.userId, "user_id");
      const role = requireRole(req.role, "role");
      const scope = requireScope(req.scope, req.scopeId, "grant");
      const expiresAt = optionalExpiry(req.expiresAt, "expires_at", clock.now());
      const access = accessOf(ctx);
      await authorize(access, organisation, "directory.write");
      const grant = await directory.grantRole({ caller: access.caller, organisation, userId, role, scope, expiresAt });
      return create(GrantRoleResponseSchema, { grant: grantToProto(grant, clock.now()) });
    },

    async revokeRoleGrant(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const id = requireUuid(req.id, "id");
      await authorize(accessOf(ctx), organisation, "directory.write");
      await directory.revokeGrant(organisation, id);
      return create(RevokeRoleGrantResponseSchema, {});
    },

    async listRoleGrants(req, ctx) {
      const organisation = requireOrganisation(req.organisation);
      const userId = req.userId === "" ? undefined : requireUserId(req.userId, "user_id");
      await authorize(accessOf(ctx), organisation, "directory.read");
      const grants = await directory.listGrants(organisation, userId);
      const now = clock.now();
      return create(ListRoleGrantsResponseSchema, { grants: grants.map((g) => grantToProto(g, now)) });
    },
  };
}
