import type { Kysely } from "kysely";
import { listCurrentVotes } from "../db/approval.repository.js";
import { findBreakGlass } from "../db/break-glass.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import type { Policy, ProjectRef } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
import { type GateState, gatePolicies, gateState } from "./rules.js";

export interface ReadApprovalStateDeps {
  readonly db: Kysely<DB>;
  readonly loadPolicies: (project: ProjectRef) => Promise<readonly Policy[]>;
}

export interface ApprovalStateQuery {
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
}

/**
 * The votes on an intent for an environment against its approval policies,
 * opened by its newest break-glass if any (NOT_FOUND: unknown intent, or no gate).
 */
export function createReadApprovalState(deps: ReadApprovalStateDeps): (q: ApprovalStateQuery) => Promise<GateState> {
  return async ({ project, intentId, environment }) => {
    if ((await findIntent(deps.db, project, intentId)) === undefined) throw intentNotFound(project, intentId);
    const gate = gatePolicies(await deps.loadPolicies(project), project, environment);
    return gateState(
      gate,
      await listCurrentVotes(deps.db, intentId, environment),
      await findBreakGlass(deps.db, intentId, environment),
    );
  };
}
