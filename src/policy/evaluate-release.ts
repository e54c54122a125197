import type { Kysely } from "kysely";
import { loadRuleDirectory } from "../approval/load-rule-directory.js";
import type { Clock } from "../clock.js";
import { readEvaluationRows } from "../db/evaluation.repository.js";
import type { DB } from "../db/schema.js";
import { readSupersedeFacts } from "../db/supersede.repository.js";
import { undeclaredEnvironmentEvaluation } from "../environment/declared-environments.js";
import { intentNotFound } from "../release/release.js";
import { applicablePolicies, type EvaluationFacts, type EvaluationResult, evaluateApplicable } from "./evaluate.js";
import type { Policy, ProjectRef, ProjectRules } from "./policy.js";

export interface EvaluateReleaseDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
}

/** A validated, authorised EvaluatePolicies request. */
export interface EvaluationQuery {
  readonly project: ProjectRef;
  readonly targetEnvironment: string;
  /** The request's branch; undefined or "" when not given. */
  readonly branch?: string;
  readonly intentId?: string;
}

/**
 * The intent's branch is authoritative: the request's word counts only for an
 * intent without one (or without an intent, as Forest's CLI evaluates).
 */
function branchFacts(requested: string | undefined, intentBranch: string | undefined): Pick<EvaluationFacts, "branch" | "requestBranchMismatch"> {
  const request = requested === "" ? undefined : requested;
  if (intentBranch === undefined || intentBranch === "") return { branch: request };
  if (request !== undefined && request !== intentBranch) return { branch: intentBranch, requestBranchMismatch: request };
  return { branch: intentBranch };
}

/** Whether the applicable policies include a supersede policy, and one that looks at the branch. */
function supersedeReads(applicable: readonly Policy[]): { withBranch: boolean } | undefined {
  let found = false;
  let withBranch = false;
  for (const p of applicable) {
    if (p.config.kind !== "supersede_pending") continue;
    found = true;
    if (p.config.sameBranchOnly) withBranch = true;
  }
  return found ? { withBranch } : undefined;
}

/**
 * The evaluation use case: may this release go to this environment now?
 * Reads the facts the applicable policies need (one round trip), then decides
 * with the pure rules on the server's clock. NOT_FOUND for an unknown intent.
 * A target the project has not declared (when it declares any) does not pass,
 * whatever its policies: one failing `declared-environments` evaluation.
 */
export function createEvaluateRelease(deps: EvaluateReleaseDeps): (q: EvaluationQuery) => Promise<EvaluationResult> {
  const { db, clock } = deps;
  return async ({ project, targetEnvironment, branch, intentId }) => {
    const rules = await deps.loadProject(project);
    const undeclared = undeclaredEnvironmentEvaluation(rules.environments, targetEnvironment, project);
    if (undeclared !== undefined) {
      // An unknown intent is still NOT_FOUND first.
      if (intentId !== undefined) {
        const { intent } = await readEvaluationRows(db, project, { releaseIntentId: intentId, sourceEnvironments: [] });
        if (intent === undefined) throw intentNotFound(project, intentId);
      }
      return undeclared;
    }
    const applicable = applicablePolicies(rules.policies, targetEnvironment);
    const sourceEnvironments = [
      ...new Set(applicable.flatMap((p) => (p.config.kind === "soak_time" ? [p.config.sourceEnvironment] : []))),
    ];
    const needsVotes = applicable.some((p) => p.config.kind === "external_approval");
    // Supersede facts only for a named intent under a supersede policy: other evaluations pay nothing.
    const supersede = intentId === undefined ? undefined : supersedeReads(applicable);
    const now = clock.now();
    // Rules are judged only for an intent; their directory rows are read alongside the facts.
    const [{ intent, lastSuccessfulDeploy, votes, breakGlass }, directory, supersedeFacts] = await Promise.all([
      readEvaluationRows(db, project, {
        releaseIntentId: intentId,
        sourceEnvironments,
        votesEnvironment: needsVotes ? targetEnvironment : undefined,
      }),
      intentId === undefined ? undefined : loadRuleDirectory(db, project, targetEnvironment, applicable, now),
      intentId === undefined || supersede === undefined
        ? undefined
        : readSupersedeFacts(db, project, intentId, targetEnvironment, supersede.withBranch),
    ]);
    if (intentId !== undefined && intent === undefined) throw intentNotFound(project, intentId);
    return evaluateApplicable(applicable, {
      ...(directory !== undefined && intent !== undefined
        ? {
            rules: {
              directory,
              parties: { authorId: intent.author, ...(intent.registrantIsUser ? { registrantId: intent.registrant } : {}) },
            },
          }
        : {}),
      now,
      targetEnvironment,
      ...branchFacts(branch, intent?.branch),
      releaseIntentId: intentId,
      lastSuccessfulDeploy,
      votes,
      breakGlass,
      ...(supersedeFacts !== undefined ? { supersede: supersedeFacts } : {}),
    });
  };
}
