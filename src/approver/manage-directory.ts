import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import type { Role } from "../auth/roles.js";
import type { Clock } from "../clock.js";
import {
  deleteGrant,
  deleteGroup,
  deleteGroupMember,
  findGroup,
  insertGrant,
  insertGroup,
  listGrants,
  listGroups,
  upsertGroupMember,
} from "../db/approver.repository.js";
import type { DB } from "../db/schema.js";
import { AlreadyExistsError, NotFoundError } from "../errors.js";
import type { ApproverGroup, GroupMember, RoleGrant, Scope } from "./directory.js";

export interface ManageDirectoryDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
}

/** The directory's use cases: groups, memberships and role grants of one organisation. */
export interface ManageDirectory {
  createGroup(cmd: {
    caller: Caller;
    organisation: string;
    name: string;
    idpGroup: string | undefined;
  }): Promise<ApproverGroup>;
  deleteGroup(organisation: string, name: string): Promise<void>;
  listGroups(organisation: string): Promise<ApproverGroup[]>;
  addMember(cmd: {
    caller: Caller;
    organisation: string;
    group: string;
    userId: string;
    displayName: string;
    scope: Scope;
    expiresAt: Date | undefined;
  }): Promise<GroupMember>;
  removeMember(organisation: string, group: string, userId: string): Promise<void>;
  grantRole(cmd: {
    caller: Caller;
    organisation: string;
    userId: string;
    role: Role;
    scope: Scope;
    expiresAt: Date | undefined;
  }): Promise<RoleGrant>;
  revokeGrant(organisation: string, id: string): Promise<void>;
  listGrants(organisation: string, userId: string | undefined): Promise<RoleGrant[]>;
}

const groupNotFound = (organisation: string, name: string) =>
  new NotFoundError(`approver group ${name} not found in organisation ${organisation}`);

export function createManageDirectory(deps: ManageDirectoryDeps): ManageDirectory {
  const { db, clock } = deps;
  return {
    async createGroup({ caller, organisation, name, idpGroup }) {
      const group = {
        organisation,
        name,
        ...(idpGroup === undefined ? {} : { idpGroup }),
        createdAt: clock.now(),
        createdBy: caller.userId,
      };
      if (!(await insertGroup(db, group)))
        throw new AlreadyExistsError(`approver group ${name} already exists in organisation ${organisation}`);
      return { ...group, members: [] };
    },

    async deleteGroup(organisation, name) {
      if (!(await deleteGroup(db, organisation, name))) throw groupNotFound(organisation, name);
    },

    listGroups: (organisation) => listGroups(db, organisation),

    async addMember(cmd) {
      // Lock-free: the membership's foreign key refuses a group deleted meanwhile (SQLSTATE 23503), mapped below.
      const member: GroupMember = {
        organisation: cmd.organisation,
        groupName: cmd.group,
        userId: cmd.userId,
        displayName: cmd.displayName,
        scope: cmd.scope,
        ...(cmd.expiresAt === undefined ? {} : { expiresAt: cmd.expiresAt }),
        addedAt: clock.now(),
        addedBy: cmd.caller.userId,
      };
      if ((await findGroup(db, cmd.organisation, cmd.group)) === undefined)
        throw groupNotFound(cmd.organisation, cmd.group);
      try {
        return await upsertGroupMember(db, member);
      } catch (err) {
        if ((err as { code?: string }).code === "23503") throw groupNotFound(cmd.organisation, cmd.group);
        throw err;
      }
    },

    async removeMember(organisation, group, userId) {
      if (!(await deleteGroupMember(db, organisation, group, userId))) {
        if ((await findGroup(db, organisation, group)) === undefined) throw groupNotFound(organisation, group);
        throw new NotFoundError(`${userId} is not a member of approver group ${group} in organisation ${organisation}`);
      }
    },

    grantRole: (cmd) =>
      insertGrant(db, {
        id: randomUUID(),
        organisation: cmd.organisation,
        userId: cmd.userId,
        role: cmd.role,
        scope: cmd.scope,
        ...(cmd.expiresAt === undefined ? {} : { expiresAt: cmd.expiresAt }),
        grantedAt: clock.now(),
        grantedBy: cmd.caller.userId,
      }),

    async revokeGrant(organisation, id) {
      if (!(await deleteGrant(db, organisation, id)))
        throw new NotFoundError(`role grant ${id} not found in organisation ${organisation}`);
    },

    listGrants: (organisation, userId) => listGrants(db, organisation, userId),
  };
}
