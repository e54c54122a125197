import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import { listCurrentVotes } from "../db/approval.repository.js";
import { findIntent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { requireDeclared } from "../environment/declared-environments.js";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { intentNotFound } from "../release/release.js";
import { judgeRules, type RuleProgress } from "./judge-rules.js";
import { loadRuleDirectory } from "./load-rule-directory.js";
import { partiesOf } from "./read-approval-state.js";
import { gatePolicies } from "./rules.js";

export interface ListEligibleApproversDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
}

export interface EligibleApproversQuery {
  readonly project: ProjectRef;
  readonly intentId: string;
  readonly environment: string;
}

/**
 * "Who may approve this?": every rule of the approval policies gating the
 * environment (in policy name order, then rule order), its count, who
 * approved and who (known people, not the author, registrant or anyone who
 * voted) may still approve. Policies without rules contribute nothing.
 * FAILED_PRECONDITION: undeclared environment; NOT_FOUND: unknown intent, or no gate.
 */
export function createListEligibleApprovers(
  deps: ListEligibleApproversDeps,
): (q: EligibleApproversQuery) => Promise<RuleProgress[]> {
  return async ({ project, intentId, environment }) => {
    const { policies, environments } = await deps.loadProject(project);
    requireDeclared(environments, environment, "target_environment", project);
    const intent = await findIntent(deps.db, project, intentId);
    if (intent === undefined) throw intentNotFound(project, intentId);
    const gate = [...gatePolicies(policies, project, environment)].sort((a, b) => (a.name < b.name ? -1 : 1));
    const [votes, directory] = await Promise.all([
      listCurrentVotes(deps.db, intentId, environment),
      loadRuleDirectory(deps.db, project, environment, gate, deps.clock.now()),
    ]);
    if (directory === undefined) return [];
    const parties = partiesOf(intent);
    return gate.flatMap((p) =>
      p.config.kind === "external_approval" && (p.config.rules?.length ?? 0) > 0
        ? [...judgeRules(p.config, votes, directory, parties).progress]
        : [],
    );
  };
}
