import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { Database } from "../db/database.js";
import {
  type ClaimedDelivery,
  claimDueDeliveries,
  markDelivered,
  markFailed,
  releaseDelivery,
} from "../db/webhook.repository.js";
import type { Logger } from "../logger.js";
import { afterFailedAttempt, type BackoffPolicy } from "./backoff.js";
import { deliveryBody } from "./payload.js";
import { type PostOutcome, safePost } from "./safe-post.js";
import { EVENT_ID_HEADER, EVENT_KIND_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signBody, TIMESTAMP_HEADER } from "./signature.js";

/** Fallback poll for retries that came due and deliveries of other replicas' commits, in ms. */
export const DEFAULT_WEBHOOK_POLL_MS = 1_000;
/** Most bytes of a receiver's answer read. */
export const WEBHOOK_MAX_RESPONSE_BYTES = 4 * 1024;
/** Lease beyond the attempt's own bound: the record of its outcome must land before another replica may retry it. */
const LEASE_MARGIN_MS = 10_000;
/** Pause after a failed claim (database unreachable), in ms. */
const CLAIM_ERROR_PAUSE_MS = 1_000;

/**
 * Attempts one subscription may have in flight at once (over all replicas):
 * a quarter of a replica's slots, at least one. A receiver that hangs holds
 * at most these for WEBHOOK_TIMEOUT_MS; the other slots serve the others.
 */
export function perSubscriptionSlots(concurrency: number): number {
  return Math.max(1, Math.ceil(concurrency / 4));
}

/** How an attempt ended, for metrics. */
export type DeliveryOutcome = "delivered" | "retry" | "dead";

export interface DeliveryWorkerOptions {
  readonly database: Database;
  readonly logger: Logger;
  readonly backoff: BackoffPolicy;
  /** Bound on one attempt, in ms (WEBHOOK_TIMEOUT_MS). */
  readonly timeoutMs: number;
  /** Attempts in flight at once on this replica (WEBHOOK_CONCURRENCY). */
  readonly concurrency: number;
  readonly allowPrivateNetworks: boolean;
  /** RELEASEGATE_PUBLIC_URL (links in Slack messages). */
  readonly publicUrl: string;
  /** Registers a wake-up callback (the outbox NOTIFY); returns the unsubscribe function. */
  readonly subscribeWakeups?: (wake: () => void) => () => void;
  readonly pollIntervalMs?: number;
  /** [0, 1): the backoff's jitter (Math.random). */
  readonly random?: () => number;
  /** Unix seconds for the timestamp header (the wall clock: receivers compare it with theirs). */
  readonly nowSeconds?: () => number;
  /** Metrics hook: each attempt's outcome, with the delivery lag in seconds when delivered. */
  readonly onOutcome?: (outcome: DeliveryOutcome, lagSeconds?: number) => void;
}

/**
 * Sends webhook deliveries, on every replica. Claims due deliveries with a
 * lease (claimDueDeliveries: SKIP LOCKED, per-request order) as slots free
 * up, POSTs each with no transaction open, and records the outcome under its
 * claim: delivered, retry with backoff, or dead after the last attempt.
 * Attempts run concurrently up to `concurrency`, each bounded by
 * `timeoutMs`, so a hanging receiver holds one slot for at most that long
 * and never the request path (votes only write rows).
 */
export class WebhookDeliveryWorker {
  readonly #o: DeliveryWorkerOptions;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #aborts = new AbortController();
  #running?: Promise<void>;
  #stopping = false;
  #wakeRequested = false;
  #sleeper?: () => void;
  #unsubscribe?: () => void;

  constructor(options: DeliveryWorkerOptions) {
    this.#o = options;
    // Every attempt in flight listens on the one stop signal (and removes its listener when done).
    setMaxListeners(Number.POSITIVE_INFINITY, this.#aborts.signal);
  }

  start(): void {
    this.#unsubscribe = this.#o.subscribeWakeups?.(() => this.wake());
    this.#running = this.#loop();
  }

  /** Looks for due deliveries now (an event committed, a delivery was made due). */
  wake(): void {
    this.#wakeRequested = true;
    this.#sleeper?.();
  }

  /** Stops claiming, aborts attempts in flight (their claims are released, not counted) and waits for them. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#unsubscribe?.();
    this.#aborts.abort();
    this.wake();
    await this.#running;
    await Promise.allSettled([...this.#inFlight]);
  }

  async #loop(): Promise<void> {
    const { database, concurrency, timeoutMs, logger } = this.#o;
    while (!this.#stopping) {
      this.#wakeRequested = false;
      const free = concurrency - this.#inFlight.size;
      let claimed: ClaimedDelivery[] = [];
      let token = "";
      // Claim when at least half the slots are free: under load one claim
      // statement then serves several deliveries instead of one per completion.
      if (free > 0 && (free >= Math.ceil(concurrency / 2) || this.#inFlight.size === 0)) {
        token = randomUUID();
        try {
          claimed = await claimDueDeliveries(database.db, {
            limit: free,
            leaseMs: timeoutMs + LEASE_MARGIN_MS,
            token,
            perSubscription: perSubscriptionSlots(concurrency),
          });
        } catch (err) {
          logger.warn({ err: (err as Error).message }, "webhook claim failed; retrying");
          await this.#sleep(CLAIM_ERROR_PAUSE_MS);
          continue;
        }
      }
      for (const delivery of claimed) {
        const attempt = this.#attempt(token, delivery).finally(() => {
          this.#inFlight.delete(attempt);
          this.wake();
        });
        this.#inFlight.add(attempt);
      }
      // A full claim may have left more due; otherwise wait for a wake-up or the poll.
      if (claimed.length > 0 && claimed.length === free) continue;
      if (!this.#wakeRequested) await this.#sleep(this.#o.pollIntervalMs ?? DEFAULT_WEBHOOK_POLL_MS);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#sleeper = done;
    });
  }

  async #attempt(token: string, d: ClaimedDelivery): Promise<void> {
    const o = this.#o;
    const body = deliveryBody(d.format, d.event, o.publicUrl);
    const timestamp = (o.nowSeconds ?? (() => Math.floor(Date.now() / 1000)))();
    const outcome: PostOutcome = await safePost({
      url: d.url,
      body,
      headers: {
        "content-type": "application/json",
        "user-agent": "releasegate-webhooks",
        [EVENT_ID_HEADER]: d.eventId,
        [IDEMPOTENCY_HEADER]: d.eventId,
        [EVENT_KIND_HEADER]: d.kind,
        [TIMESTAMP_HEADER]: String(timestamp),
        [SIGNATURE_HEADER]: signBody(d.secret, timestamp, body),
      },
      timeoutMs: o.timeoutMs,
      maxResponseBytes: WEBHOOK_MAX_RESPONSE_BYTES,
      allowPrivateNetworks: o.allowPrivateNetworks,
      signal: this.#aborts.signal,
    });
    try {
      await this.#record(token, d, outcome);
    } catch (err) {
      // The lease runs out and the delivery is tried again: at least once.
      o.logger.warn({ err: (err as Error).message, delivery: d.id }, "webhook outcome not recorded");
    }
  }

  async #record(token: string, d: ClaimedDelivery, outcome: PostOutcome): Promise<void> {
    const { database, backoff, onOutcome } = this.#o;
    if (outcome.ok) {
      const lag = await markDelivered(database.db, token, d.id, outcome.statusCode);
      if (lag !== undefined) onOutcome?.("delivered", lag);
      return;
    }
    if (outcome.aborted) return releaseDelivery(database.db, token, d.id);
    const next = afterFailedAttempt(backoff, d.attempts + 1, this.#o.random ?? Math.random);
    const recorded = await markFailed(database.db, token, d.id, {
      error: outcome.error,
      statusCode: outcome.statusCode,
      retryInMs: next.dead ? undefined : next.delayMs,
    });
    if (recorded) onOutcome?.(next.dead ? "dead" : "retry");
  }
}
