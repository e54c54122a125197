import type { Kysely } from "kysely";
import type { Clock } from "../clock.js";
import { expireDueRequests } from "../db/approval-request.repository.js";
import type { DB } from "../db/schema.js";
import type { ApprovalRequest } from "./request-state.js";

/** Due requests one transaction expires at most (more wait for the next batch of the same tick). */
export const EXPIRE_BATCH = 100;
/** Batches one tick runs at most, so a backlog cannot hold a replica's tick for long. */
export const EXPIRE_BATCHES_PER_TICK = 10;

export interface ExpireDueDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  readonly subjectPrefix: string;
  /** Called after a batch committed its outbox events (wakes the in-process relay). */
  readonly onOutboxCommitted?: () => void;
  /** Called with what one batch expired (metrics). */
  readonly onExpired?: (requests: readonly ApprovalRequest[]) => void;
}

/**
 * The reaper's use case: expires the pending requests due at the clock's
 * now, batch by batch, each batch in its own transaction with its history
 * rows and `approval.expired` events. Replicas running it at once skip each
 * other's rows (SKIP LOCKED): every request is expired exactly once.
 * Returns how many this call expired.
 */
export function createExpireDueRequests(deps: ExpireDueDeps): () => Promise<number> {
  return async () => {
    let total = 0;
    for (let batch = 0; batch < EXPIRE_BATCHES_PER_TICK; batch++) {
      const now = deps.clock.now();
      const expired = await deps.db
        .transaction()
        .execute((trx) => expireDueRequests(trx, now, EXPIRE_BATCH, deps.subjectPrefix));
      if (expired.length === 0) break;
      total += expired.length;
      deps.onOutboxCommitted?.();
      deps.onExpired?.(expired);
      if (expired.length < EXPIRE_BATCH) break;
    }
    return total;
  };
}
