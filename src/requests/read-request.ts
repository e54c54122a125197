import type { Kysely } from "kysely";
import { loadRuleDirectory } from "../approval/load-rule-directory.js";
import { partiesOf } from "../approval/read-approval-state.js";
import { approvalPoliciesFor, type GateState, gateState } from "../approval/rules.js";
import type { Clock } from "../clock.js";
import { listCurrentVotes } from "../db/approval.repository.js";
import { listRequests } from "../db/approval-request.repository.js";
import { findBreakGlass } from "../db/break-glass.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound, type ReleaseIntent } from "../release/release.js";
import { type ApprovalRequest, asSeenAt } from "./request-state.js";

export interface ReadRequestDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
}

export interface ReadRequestQuery {
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
}

export interface RequestView {
  readonly intent: ReleaseIntent;
  /** The newest request, as it stands now (a due one shows expired); undefined when none was opened. */
  readonly newest?: ApprovalRequest;
  /** The newest request's progress against the gate (votes cast on it); undefined without a gate or request. */
  readonly progress?: GateState;
  /** Earlier requests, newest first. */
  readonly earlier: readonly ApprovalRequest[];
}

/**
 * GetApprovalRequest: the requests of an intent and environment, newest
 * first, the newest with its progress. FAILED_PRECONDITION: undeclared
 * environment; NOT_FOUND: unknown intent.
 */
export function createReadRequest(deps: ReadRequestDeps): (q: ReadRequestQuery) => Promise<RequestView> {
  const { db, clock } = deps;
  return async ({ project, intentId, environment }) => {
    const { policies, environments } = await deps.loadProject(project);
    requireDeclared(environments, environment, "target_environment", project);
    const intent = await findIntent(db, project, intentId);
    if (intent === undefined) throw intentNotFound(project, intentId);
    const now = clock.now();
    const [newest, ...earlier] = (await listRequests(db, intentId, environment)).map((r) => asSeenAt(r, now));
    if (newest === undefined) return { intent, earlier: [] };
    const gate = approvalPoliciesFor(policies, environment);
    if (gate.length === 0) return { intent, newest, earlier };
    const [votes, directory, breakGlass] = await Promise.all([
      listCurrentVotes(db, intentId, environment, newest.id),
      loadRuleDirectory(db, project, environment, gate, now),
      findBreakGlass(db, intentId, environment),
    ]);
    const progress = gateState(gate, votes, directory === undefined ? undefined : { directory, parties: partiesOf(intent) }, breakGlass);
    return { intent, newest, progress, earlier };
  };
}
