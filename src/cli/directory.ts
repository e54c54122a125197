import { Command } from "commander";
import {
  AddGroupMemberResponseSchema,
  type ApproverGroup,
  ApproverService,
  CreateApproverGroupResponseSchema,
  DeleteApproverGroupResponseSchema,
  GrantRoleResponseSchema,
  ListApproverGroupsResponseSchema,
  ListRoleGrantsResponseSchema,
  RemoveGroupMemberResponseSchema,
  RevokeRoleGrantResponseSchema,
  type RoleGrant,
} from "../gen/releasegate/v1/approver_pb.js";
import { rpcAction } from "./context.js";

interface OrgOption {
  org: string;
}

interface ScopeOptions extends OrgOption {
  scope: string;
  scopeId?: string;
  expiresAt?: string;
}

const orgOption = (cmd: Command) => cmd.requiredOption("--org <organisation>", "organisation, e.g. acme");

/** --scope, --scope-id and --expires-at, as the server validates them. */
const scopeOptions = (cmd: Command) =>
  orgOption(cmd)
    .option("--scope <scope>", "organisation, project or environment", "organisation")
    .option("--scope-id <id>", "project (project scope) or project/environment (environment scope)")
    .option("--expires-at <time>", "RFC 3339 time after which it stops counting, e.g. 2026-12-31T18:00:00Z");

const scopeLabel = (scope: string, scopeId: string) => (scopeId === "" ? scope : `${scope} ${scopeId}`);
const until = (expiresAt: string, active: boolean) => (expiresAt === "" ? "-" : `${expiresAt}${active ? "" : " (expired)"}`);

function groupRows(groups: readonly ApproverGroup[]): string[][] {
  const rows = [["GROUP", "IDP GROUP", "MEMBER", "SCOPE", "EXPIRES"]];
  for (const g of groups) {
    if (g.members.length === 0) rows.push([g.name, g.idpGroup || "-", "-", "-", "-"]);
    for (const m of g.members)
      rows.push([
        g.name,
        g.idpGroup || "-",
        m.displayName === m.userId ? m.userId : `${m.userId} (${m.displayName})`,
        scopeLabel(m.scope, m.scopeId),
        until(m.expiresAt, m.active),
      ]);
  }
  return rows;
}

function grantRows(grants: readonly RoleGrant[]): string[][] {
  return [
    ["ID", "USER", "ROLE", "SCOPE", "EXPIRES", "GRANTED BY"],
    ...grants.map((g) => [
      g.id,
      g.userId,
      g.role,
      scopeLabel(g.scope, g.scopeId),
      until(g.expiresAt, g.active),
      g.grantedBy,
    ]),
  ];
}

/** `releasegate groups create|delete|list|add-member|remove-member`: approver groups. */
export function groupsCommand(): Command {
  const groups = new Command("groups").description("approver groups of an organisation (admins write, everyone reads)");

  orgOption(groups.command("create <name>").description("create an approver group"))
    .option("--idp-group <name>", "identity-provider group whose token holders are members at vote time")
    .action(
      rpcAction(async (ctx, name: string, o: OrgOption & { idpGroup?: string }) => {
        const res = await ctx
          .client(ApproverService)
          .createApproverGroup({ organisation: o.org, name, idpGroup: o.idpGroup ?? "" });
        ctx.print(CreateApproverGroupResponseSchema, res, () => groupRows(res.group === undefined ? [] : [res.group]));
      }),
    );

  orgOption(groups.command("delete <name>").description("delete a group and its memberships")).action(
    rpcAction(async (ctx, name: string, o: OrgOption) => {
      const res = await ctx.client(ApproverService).deleteApproverGroup({ organisation: o.org, name });
      ctx.print(DeleteApproverGroupResponseSchema, res, () => [[`deleted group ${name}`]]);
    }),
  );

  orgOption(groups.command("list").description("list groups with their members")).action(
    rpcAction(async (ctx, o: OrgOption) => {
      const res = await ctx.client(ApproverService).listApproverGroups({ organisation: o.org });
      ctx.print(ListApproverGroupsResponseSchema, res, () => groupRows(res.groups));
    }),
  );

  scopeOptions(
    groups
      .command("add-member <group> <user>")
      .description("add a member (or replace the user's membership), optionally scoped and expiring"),
  )
    .option("--display-name <name>", "how people read the member (default: the user id)")
    .action(
      rpcAction(async (ctx, group: string, userId: string, o: ScopeOptions & { displayName?: string }) => {
        const res = await ctx.client(ApproverService).addGroupMember({
          organisation: o.org,
          group,
          userId,
          displayName: o.displayName ?? "",
          scope: o.scope,
          scopeId: o.scopeId ?? "",
          expiresAt: o.expiresAt ?? "",
        });
        const m = res.member;
        ctx.print(AddGroupMemberResponseSchema, res, () => [
          ["GROUP", "MEMBER", "SCOPE", "EXPIRES"],
          [group, m?.userId ?? userId, scopeLabel(m?.scope ?? "", m?.scopeId ?? ""), until(m?.expiresAt ?? "", true)],
        ]);
      }),
    );

  orgOption(groups.command("remove-member <group> <user>").description("remove a user's membership")).action(
    rpcAction(async (ctx, group: string, userId: string, o: OrgOption) => {
      const res = await ctx.client(ApproverService).removeGroupMember({ organisation: o.org, group, userId });
      ctx.print(RemoveGroupMemberResponseSchema, res, () => [[`removed ${userId} from ${group}`]]);
    }),
  );
  return groups;
}

/** `releasegate grants add|revoke|list`: role grants. */
export function grantsCommand(): Command {
  const grants = new Command("grants").description(
    "role grants: raise a user's role (viewer < member < maintainer < admin) for a scope, optionally until a time",
  );

  scopeOptions(grants.command("add <user> <role>").description("grant a role (organisation admins)")).action(
    rpcAction(async (ctx, userId: string, role: string, o: ScopeOptions) => {
      const res = await ctx.client(ApproverService).grantRole({
        organisation: o.org,
        userId,
        role,
        scope: o.scope,
        scopeId: o.scopeId ?? "",
        expiresAt: o.expiresAt ?? "",
      });
      ctx.print(GrantRoleResponseSchema, res, () => grantRows(res.grant === undefined ? [] : [res.grant]));
    }),
  );

  orgOption(grants.command("revoke <id>").description("revoke a grant by id")).action(
    rpcAction(async (ctx, id: string, o: OrgOption) => {
      const res = await ctx.client(ApproverService).revokeRoleGrant({ organisation: o.org, id });
      ctx.print(RevokeRoleGrantResponseSchema, res, () => [[`revoked grant ${id}`]]);
    }),
  );

  orgOption(grants.command("list").description("list grants, oldest first"))
    .option("--user <id>", "only this user's grants")
    .action(
      rpcAction(async (ctx, o: OrgOption & { user?: string }) => {
        const res = await ctx.client(ApproverService).listRoleGrants({ organisation: o.org, userId: o.user ?? "" });
        ctx.print(ListRoleGrantsResponseSchema, res, () => grantRows(res.grants));
      }),
    );
  return grants;
}
