import { randomUUID } from "node:crypto";
import type { Transaction } from "kysely";
import { APPROVAL_SUPERSEDED, type ApprovalDecidedEvent } from "../approval/event.js";
import { outboxInsertFor } from "../db/outbox.repository.js";
import type { DB } from "../db/schema.js";
import { lockSupersedeCandidates, writeSupersession } from "../db/supersede.repository.js";
import type { Policy, ProjectRef, SupersedePendingConfig } from "../policy/policy.js";
import { supersededReason } from "../policy/supersede.js";
import { approvalSubject } from "../signal/subject.js";

/** An enabled supersede policy, narrowed. */
type SupersedePolicy = Policy & { readonly config: SupersedePendingConfig };

/** The project's enabled supersede policies, in name order (the first per environment names the supersession). */
export function supersedePolicies(policies: readonly Policy[]): SupersedePolicy[] {
  return policies
    .filter((p): p is SupersedePolicy => p.enabled && p.config.kind === "supersede_pending")
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** One request that a registration superseded. */
export interface Supersession {
  readonly requestId: string;
  readonly releaseIntentId: string;
  readonly environment: string;
  readonly policyName: string;
  readonly eventId: string;
}

export interface SupersedeContext {
  readonly project: ProjectRef;
  /** The intent just registered, in this transaction. */
  readonly newerIntentId: string;
  readonly policies: readonly Policy[];
  readonly now: Date;
  /** JetStream subject prefix (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
}

/**
 * Inside the registering transaction: for each enabled supersede policy,
 * ends the older intents' pending requests for its environment as
 * `superseded` by the new intent, each with its history row and its
 * `approval.superseded` outbox event (whose relay publish also sends
 * Forest's `forest.intent.evaluate` with the superseded intent's id, so a
 * coordinator drops it). Votes stay with the old request: nothing carries
 * over to the newer intent. Two policies on one environment supersede once,
 * named after the first by name (one with `same_branch_only` false takes
 * in every request the other would).
 */
export async function supersedeOlderRequests(trx: Transaction<DB>, ctx: SupersedeContext): Promise<Supersession[]> {
  const { project, newerIntentId, now } = ctx;
  const done: Supersession[] = [];
  const seen = new Set<string>();
  for (const policy of supersedePolicies(ctx.policies)) {
    const environment = policy.config.targetEnvironment;
    const candidates = await lockSupersedeCandidates(trx, project, newerIntentId, environment, policy.config.sameBranchOnly);
    const required = requiredApprovals(ctx.policies, environment);
    const subject = approvalSubject(ctx.subjectPrefix, project.organisation, project.project, environment);
    for (const c of candidates) {
      if (seen.has(c.requestId)) continue;
      seen.add(c.requestId);
      const reason = supersededReason(newerIntentId, policy.name);
      const event: ApprovalDecidedEvent = {
        event_id: randomUUID(),
        kind: APPROVAL_SUPERSEDED,
        organisation: project.organisation,
        project: project.project,
        environment,
        release_intent_id: c.releaseIntentId,
        voter_user_id: "system",
        voter_username: "system",
        decision: "",
        decision_kind: "",
        current_approvals: c.approvals,
        required_approvals: required,
        passed: false,
        decided_at: now.toISOString(),
        reason,
        request_id: c.requestId,
        request_state: "superseded",
        superseded_by: newerIntentId,
      };
      const written = await writeSupersession(trx, {
        project,
        requestId: c.requestId,
        releaseIntentId: c.releaseIntentId,
        environment,
        supersededBy: newerIntentId,
        reason,
        at: now,
        outbox: outboxInsertFor(event, subject),
      });
      // Locked above by this transaction: it is still pending.
      if (!written) throw new Error(`approval request ${c.requestId} left pending under its row lock`);
      done.push({
        requestId: c.requestId,
        releaseIntentId: c.releaseIntentId,
        environment,
        policyName: policy.name,
        eventId: event.event_id,
      });
    }
  }
  return done;
}

/** The strictest `required_approvals` of the environment's enabled approval policies (0: none). */
function requiredApprovals(policies: readonly Policy[], environment: string): number {
  let required = 0;
  for (const p of policies)
    if (p.enabled && p.config.kind === "external_approval" && p.config.targetEnvironment === environment)
      required = Math.max(required, p.config.requiredApprovals);
  return required;
}
