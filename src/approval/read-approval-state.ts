import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import { listCurrentVotes } from "../db/approval.repository.js";
import { findNewestRequest } from "../db/approval-request.repository.js";
import { findBreakGlass } from "../db/break-glass.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound, type ReleaseIntent } from "../release/release.js";
import { asSeenAt } from "../requests/request-state.js";
import type { IntentParties } from "./judge-rules.js";
import { loadRuleDirectory } from "./load-rule-directory.js";
import { type GateState, gatePolicies, gateState } from "./rules.js";

/** The four-eyes parties of an intent: its author, and its registrant when a person registered it. */
export function partiesOf(intent: Pick<ReleaseIntent, "authorUserId" | "registeredByUserId" | "registeredByActorType">): IntentParties {
  return {
    authorId: intent.authorUserId,
    ...(intent.registeredByActorType === "user" ? { registrantId: intent.registeredByUserId } : {}),
  };
}

export interface ReadApprovalStateDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
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
export function createReadApprovalState(
  deps: ReadApprovalStateDeps,
): (q: ApprovalStateQuery) => Promise<GateState & { readonly request?: { id: string; state: string } }> {
  return async ({ project, intentId, environment }) => {
    const { policies, environments } = await deps.loadProject(project);
    requireDeclared(environments, environment, "target_environment", project);
    const intent = await findIntent(deps.db, project, intentId);
    if (intent === undefined) throw intentNotFound(project, intentId);
    const gate = gatePolicies(policies, project, environment);
    // The votes of the newest request (before any request: the votes cast then).
    const newest = await findNewestRequest(deps.db, intentId, environment);
    const request = newest === undefined ? undefined : asSeenAt(newest, deps.clock.now());
    const [votes, directory, breakGlass] = await Promise.all([
      listCurrentVotes(deps.db, intentId, environment, newest?.id ?? null),
      loadRuleDirectory(deps.db, project, environment, gate, deps.clock.now()),
      findBreakGlass(deps.db, intentId, environment),
    ]);
    const state = gateState(gate, votes, directory === undefined ? undefined : { directory, parties: partiesOf(intent) }, breakGlass);
    return request === undefined ? state : { ...state, request: { id: request.id, state: request.state } };
  };
}
