import { Command } from "commander";
import {
  EnvironmentService,
  GetProjectEnvironmentsResponseSchema,
  SetProjectEnvironmentsResponseSchema,
} from "../gen/releasegate/v1/environment_pb.js";
import { type ProjectFields, projectOption, rpcAction } from "./context.js";

const listRows = (environments: readonly string[], declared: boolean) =>
  declared ? [["ENVIRONMENT"], ...environments.map((e) => [e])] : [["no declared environments (every name is accepted)"]];

/** `releasegate environments set|get|clear`: a project's declared environments. */
export function environmentsCommand(): Command {
  const environments = new Command("environments").description(
    "declare the environments a project deploys to (once declared, any other name does not pass)",
  );

  projectOption(
    environments
      .command("set <environment...>")
      .description("declare the project's environments, replacing the earlier list (organisation admins)"),
  ).action(
    rpcAction(async (ctx, names: string[], o: { project: ProjectFields }) => {
      const res = await ctx.client(EnvironmentService).setProjectEnvironments({ project: o.project, environments: names });
      ctx.print(SetProjectEnvironmentsResponseSchema, res, () => listRows(res.environments, true));
    }),
  );

  projectOption(environments.command("get").description("show the project's declared environments")).action(
    rpcAction(async (ctx, o: { project: ProjectFields }) => {
      const res = await ctx.client(EnvironmentService).getProjectEnvironments({ project: o.project });
      ctx.print(GetProjectEnvironmentsResponseSchema, res, () => listRows(res.environments, res.declared));
    }),
  );

  projectOption(
    environments
      .command("clear")
      .description("remove the declaration: every environment name is accepted again (organisation admins)"),
  ).action(
    rpcAction(async (ctx, o: { project: ProjectFields }) => {
      const res = await ctx.client(EnvironmentService).setProjectEnvironments({ project: o.project, environments: [] });
      ctx.print(SetProjectEnvironmentsResponseSchema, res, () => [["declaration removed"]]);
    }),
  );
  return environments;
}
