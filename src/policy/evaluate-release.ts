import type { Kysely } from "kysely";
import { loadRuleDirectory } from "../approval/load-rule-directory.js";
import { approvalPoliciesFor } from "../approval/rules.js";
import type { Clock } from "../clock.js";
import { finishRequest, lockIntent } from "../db/approval-request.repository.js";
import { readEvaluationRows } from "../db/evaluation.repository.js";
import type { DB } from "../db/schema.js";
import { readSupersedeFacts } from "../db/supersede.repository.js";
import { undeclaredEnvironmentEvaluation } from "../environment/declared-environments.js";
import { intentNotFound } from "../release/release.js";
import { openRequestIn } from "../requests/open-request.js";
import { type ApprovalRequest, asSeenAt, describeOutcome, SYSTEM_ACTOR } from "../requests/request-state.js";
import { applicablePolicies, type EvaluationFacts, type EvaluationResult, evaluateApplicable } from "./evaluate.js";
import type { Policy, ProjectRef, ProjectRules } from "./policy.js";

export interface EvaluateReleaseDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** JetStream subject prefix of the request events an evaluation writes (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Called after an evaluation committed a request transition's outbox event. */
  readonly onOutboxCommitted?: () => void;
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
  /** Who evaluates: opens the approval request when an approval policy is unsatisfied. */
  readonly caller?: { readonly userId: string; readonly username: string; readonly actorType: string };
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
  return async (q) => {
    const { project, targetEnvironment, branch, intentId } = q;
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
    const [{ intent, lastSuccessfulDeploy, votes, breakGlass, request }, directory, supersedeFacts] = await Promise.all([
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
    const seen = request === undefined ? undefined : asSeenAt(request, now);
    const blocked = seen !== undefined && seen.state !== "pending" && seen.state !== "approved";
    const result = evaluateApplicable(applicable, {
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
      ...(blocked ? { requestBlock: requestBlockReason(seen) } : {}),
    });
    const settled =
      intentId !== undefined && needsVotes && !blocked
        ? await settleRequest(deps, { project, environment: targetEnvironment, intentId, applicable, result, request: seen, now, caller: q.caller })
        : seen;
    return settled === undefined ? result : { ...result, request: { id: settled.id, state: settled.state } };
  };
}

/** Why a final request blocks, in words a person acts on (what happened, what to do). */
function requestBlockReason(r: ApprovalRequest): string {
  return `approval request ${r.id} ${describeOutcome(r)}; ask again with RequestApproval (releasegate request)`;
}

interface Settle {
  readonly project: ProjectRef;
  readonly environment: string;
  readonly intentId: string;
  readonly applicable: readonly Policy[];
  readonly result: EvaluationResult;
  readonly request: ApprovalRequest | undefined;
  readonly now: Date;
  readonly caller: EvaluationQuery["caller"];
}

/**
 * What an evaluation does to the intent's approval request: opens one when
 * an approval policy is unsatisfied and there is none yet (or the newest was
 * approved but no longer passes, e.g. approvals aged out), and approves a
 * pending one when every approval policy passes (decided_by `system`). A
 * final request other than approved is reported, never reopened.
 */
async function settleRequest(deps: EvaluateReleaseDeps, s: Settle): Promise<ApprovalRequest | undefined> {
  let approvalsPass = true;
  for (const e of s.result.evaluations) if (e.kind === "external_approval" && !e.passed) approvalsPass = false;
  const state = s.request?.state;
  const opens = !approvalsPass && (state === undefined || state === "approved");
  const approves = approvalsPass && state === "pending";
  if (!opens && !approves) return s.request;
  const gate = approvalPoliciesFor(s.applicable, s.environment);
  const after = await deps.db.transaction().execute(async (trx): Promise<ApprovalRequest | undefined> => {
    if (opens) {
      const caller = s.caller ?? { userId: SYSTEM_ACTOR, username: SYSTEM_ACTOR, actorType: "service" };
      const { request } = await openRequestIn(trx, {
        project: s.project,
        intentId: s.intentId,
        environment: s.environment,
        requestedBy: caller,
        openedBy: "evaluation",
        gate,
        now: s.now,
        subjectPrefix: deps.subjectPrefix,
      });
      return request;
    }
    if (s.request === undefined) return undefined;
    await lockIntent(trx, s.intentId);
    // Undefined when someone decided it meanwhile: then it says what it is on the next read.
    return finishRequest(trx, {
      id: s.request.id,
      to: "approved",
      actor: { userId: SYSTEM_ACTOR, username: SYSTEM_ACTOR },
      decidedAt: s.now,
      reason: `every approval policy on ${s.environment} passes (evaluation)`,
      subjectPrefix: deps.subjectPrefix,
    });
  });
  deps.onOutboxCommitted?.();
  return after ?? s.request;
}
