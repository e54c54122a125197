import type { Kysely } from "kysely";
import { listCurrentVotes } from "../db/approval.repository.js";
import { findBreakGlass } from "../db/break-glass.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
import { type GateState, gatePolicies, gateState } from "./rules.js";

export interface ReadApprovalStateDeps {
  readonly db: Kysely<DB>;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
}

export interface ApprovalStateQuery {
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
}

/**
 * The votes on an intent for an environment against its approval policies,
 * opened by its newest break-glass if any (FAILED_PRECONDITION: undeclared
 * environment; NOT_FOUND: unknown intent, or no gate).
 */
export function createReadApprovalState(deps: ReadApprovalStateDeps): (q: ApprovalStateQuery) => Promise<GateState> {
  return async ({ project, intentId, environment }) => {
    const { policies, environments } = await deps.loadProject(project);
    requireDeclared(environments, environment, "target_environment", project);
    if ((await findIntent(deps.db, project, intentId)) === undefined) throw intentNotFound(project, intentId);
    const gate = gatePolicies(policies, project, environment);
    return gateState(
      gate,
      await listCurrentVotes(deps.db, intentId, environment),
      await findBreakGlass(deps.db, intentId, environment),
    );
  };
}
