import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { authorize } from "../auth/permissions.js";
import { requireEnvironmentList } from "../environment/declared-environments.js";
import {
  createReadProjectEnvironments,
  type ReadProjectEnvironmentsDeps,
} from "../environment/read-project-environments.js";
import {
  createSetProjectEnvironments,
  type SetProjectEnvironmentsDeps,
} from "../environment/set-project-environments.js";
import {
  type EnvironmentService,
  GetProjectEnvironmentsResponseSchema,
  SetProjectEnvironmentsResponseSchema,
} from "../gen/releasegate/v1/environment_pb.js";
import { requireProject } from "../policy/validate.js";
import { accessOf } from "./context.js";

export type EnvironmentServiceDeps = SetProjectEnvironmentsDeps & ReadProjectEnvironmentsDeps;

/** releasegate.v1.EnvironmentService: a project's declared environments. */
export function createEnvironmentHandlers(deps: EnvironmentServiceDeps): ServiceImpl<typeof EnvironmentService> {
  const setEnvironments = createSetProjectEnvironments(deps);
  const readEnvironments = createReadProjectEnvironments(deps);
  return {
    async setProjectEnvironments(req, ctx) {
      const project = requireProject(req.project);
      const environments = requireEnvironmentList(req.environments);
      const access = accessOf(ctx);
      const caller = access.caller;
      await authorize(access, project.organisation, "environment.write", { project: project.project });
      const stored = await setEnvironments({ project, environments, updatedBy: caller.userId });
      return create(SetProjectEnvironmentsResponseSchema, { environments: [...stored] });
    },

    async getProjectEnvironments(req, ctx) {
      const project = requireProject(req.project);
      await authorize(accessOf(ctx), project.organisation, "environment.read", { project: project.project });
      const declared = await readEnvironments(project);
      return create(GetProjectEnvironmentsResponseSchema, {
        environments: declared === undefined ? [] : [...declared],
        declared: declared !== undefined,
      });
    },
  };
}
