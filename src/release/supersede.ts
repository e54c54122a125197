import type { Transaction } from "kysely";
import { lockIntent, supersedePendingRequests } from "../db/approval-request.repository.js";
import type { DB } from "../db/schema.js";
import { findSupersedeCandidates } from "../db/supersede.repository.js";
import type { Policy, ProjectRef, SupersedePendingConfig } from "../policy/policy.js";
import { supersededReason } from "../policy/supersede.js";

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
 * `superseded` by the new intent (decided by `system`), each with its
 * history row and its `approval.superseded` outbox event, whose relay
 * publish also sends Forest's `forest.intent.evaluate` with the superseded
 * intent's id, so a coordinator drops it. Votes stay with the old request:
 * nothing carries over to the newer intent. Two policies on one environment
 * supersede once, named after the first by name (the second finds nothing
 * pending any more).
 */
export async function supersedeOlderRequests(trx: Transaction<DB>, ctx: SupersedeContext): Promise<Supersession[]> {
  const { project, newerIntentId, now } = ctx;
  const done: Supersession[] = [];
  for (const policy of supersedePolicies(ctx.policies)) {
    const environment = policy.config.targetEnvironment;
    const older = await findSupersedeCandidates(trx, project, newerIntentId, environment, policy.config.sameBranchOnly, now);
    // Intent rows first, in id order, as votes and every other transition do
    // (intent, then request): a concurrent vote on an old intent cannot deadlock with us.
    for (const id of older) await lockIntent(trx, id);
    const ended = await supersedePendingRequests(trx, {
      organisation: project.organisation,
      project: project.project,
      environment,
      releaseIntentIds: older,
      supersededBy: newerIntentId,
      decidedAt: now,
      reason: supersededReason(newerIntentId, policy.name),
      subjectPrefix: ctx.subjectPrefix,
    });
    for (const r of ended)
      done.push({ requestId: r.id, releaseIntentId: r.releaseIntentId, environment, policyName: policy.name });
  }
  return done;
}
