import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import {
  claimUnpublished,
  deletePublishedBefore,
  markPublished,
  type OutboxRow,
  outboxDepth,
  releaseClaim,
} from "../db/outbox.repository.js";
import type { Logger } from "../logger.js";
import type { EventPublisher } from "./nats-publisher.js";
import { publishByIntent } from "./publish-by-intent.js";

/** Fallback poll when no wake-up arrives (lost NOTIFY, another replica's commit), in ms. */
export const DEFAULT_RELAY_POLL_MS = 5_000;
/** Rows claimed at once. */
export const DEFAULT_RELAY_BATCH = 100;
/**
 * How long a claim keeps other relays off its rows: 15 s. A relay that dies
 * mid-publish delays its rows by at most this much; another relay then
 * publishes them again, and JetStream drops the repeats by Nats-Msg-Id only
 * within the stream's duplicate window (1 h for a stream releasegate
 * creates, 2 min by NATS' default): keep the lease far below it.
 */
export const DEFAULT_RELAY_LEASE_MS = 15_000;
/** Published rows are kept this long (for inspection), then deleted: 7 days. */
export const DEFAULT_OUTBOX_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** How often the relay deletes expired published rows: hourly. */
const PRUNE_INTERVAL_MS = 3600 * 1000;
/** Retry backoff after a failed publish, in ms: doubles from min to max. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/**
 * Release intents a batch publishes at once (each intent's rows still one
 * after another): under a vote burst a batch spans many intents, and one
 * JetStream ack round trip per row in sequence would bound the relay.
 */
export const RELAY_INTENT_CONCURRENCY = 32;

export interface OutboxRelayOptions {
  readonly database: Database;
  /** Undefined: signals are off (no NATS_URL); events stay in the outbox. */
  readonly publisher?: EventPublisher;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Registers a wake-up callback (e.g. on the outbox NOTIFY); returns the unsubscribe function. */
  readonly subscribeWakeups?: (wake: () => void) => () => void;
  readonly pollIntervalMs?: number;
  readonly batchSize?: number;
  /**
   * Lease of a claim, in ms (default DEFAULT_RELAY_LEASE_MS). No publish
   * starts after two thirds of it: the last third is more than the
   * publisher's own timeout (2 s for a 15 s lease), so every publish of a
   * claim ends before another relay may take its rows.
   */
  readonly leaseMs?: number;
  /** How long published rows stay in the outbox. */
  readonly retentionMs?: number;
  /** Metrics hook: one call per event published. */
  readonly onPublished?: (row: OutboxRow) => void;
  /** Metrics hook: one call per failed publish attempt (the event is retried), or per failed claim/mark. */
  readonly onPublishError?: (err: unknown) => void;
}

/**
 * Publishes committed outbox rows: leases a batch in one short statement
 * (see `claimUnpublished`; replicas never hold the same unexpired lease),
 * publishes each intent's rows in sequence order (different intents
 * concurrently, see {@link RELAY_INTENT_CONCURRENCY}) with no database
 * transaction or row lock held while it waits on NATS, then marks the rows
 * that reached JetStream and still carry its claim, and releases the others
 * for the next claim. Runs on every wake-up, with a slow poll as fallback; an
 * intent whose publish fails stops at the failed row (keeping per-intent
 * order) while the others' published rows are marked, and the relay retries
 * with backoff. Several calls to wake() while a drain runs cause one more
 * drain.
 */
export class OutboxRelay {
  readonly #o: OutboxRelayOptions;
  readonly #pollMs: number;
  readonly #batch: number;
  readonly #leaseMs: number;
  #timer?: NodeJS.Timeout;
  #running?: Promise<void>;
  #again = false;
  /** Current retry backoff; 0 while healthy. */
  #backoffMs = 0;
  #retryPending = false;
  #stopped = true;
  #unsubscribe?: () => void;
  /** Clock time of the last prune; undefined: not yet (prune on the first healthy run). */
  #prunedAt?: number;

  constructor(options: OutboxRelayOptions) {
    this.#o = options;
    this.#pollMs = options.pollIntervalMs ?? DEFAULT_RELAY_POLL_MS;
    this.#batch = options.batchSize ?? DEFAULT_RELAY_BATCH;
    this.#leaseMs = options.leaseMs ?? DEFAULT_RELAY_LEASE_MS;
  }

  start(): void {
    if (this.#o.publisher === undefined) {
      this.#o.logger.warn("NATS_URL not set: approval signals are off; events stay in the outbox");
      return;
    }
    this.#stopped = false;
    this.#unsubscribe = this.#o.subscribeWakeups?.(() => this.wake());
    this.wake();
  }

  /** Publish now (after a local commit, a NOTIFY, or NATS becoming ready). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined || this.#retryPending) {
      // The running drain (or the pending retry) schedules the next one.
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#launch();
  }

  #launch(): void {
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
      this.#scheduleNext();
    });
  }

  #scheduleNext(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#retryPending = this.#backoffMs > 0;
    const delay = this.#retryPending ? this.#backoffMs : this.#again ? 0 : this.#pollMs;
    this.#again = false;
    this.#timer = setTimeout(() => {
      this.#retryPending = false;
      this.#launch();
    }, delay);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    const publisher = this.#o.publisher;
    // Not connected: nothing to try; the publisher wakes us when it is ready again.
    if (publisher === undefined || !publisher.ready) return;
    let failures: readonly unknown[] = [];
    try {
      for (;;) {
        const batch = await this.#drainBatch(publisher);
        failures = batch.failures;
        if (failures.length > 0) break;
        // A short batch means we are done; none published means the rest is another relay's.
        if (batch.claimed < this.#batch || batch.published === 0) break;
      }
    } catch (err) {
      // Claiming or marking failed (the database): rows left unmarked are claimed and published
      // again once their lease runs out, and JetStream drops the repeats by Nats-Msg-Id.
      failures = [err];
    }
    if (failures.length === 0) {
      this.#backoffMs = 0;
      await this.#pruneIfDue();
      return;
    }
    this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
    for (const err of failures) this.#o.onPublishError?.(err);
    this.#o.logger.warn(
      { err: (failures[0] as Error).message, failed: failures.length, retryInMs: this.#backoffMs },
      "outbox relay: publish failed",
    );
  }

  async #drainBatch(
    publisher: EventPublisher,
  ): Promise<{ claimed: number; published: number; failures: readonly unknown[] }> {
    const { db, kind } = this.#o.database;
    const token = randomUUID();
    // Measured from before the claim is sent, so it runs out before the lease the database grants.
    const lastStart = performance.now() + (this.#leaseMs * 2) / 3;
    const rows = await claimUnpublished(db, { limit: this.#batch, leaseMs: this.#leaseMs, token });
    if (rows.length === 0) return { claimed: 0, published: 0, failures: [] };
    // Embedded PGlite is one process with this one relay, whose drains run one
    // after another: no other relay can take the rows, so the lease needs no watch.
    const mayStart = kind === "pglite" ? () => true : () => performance.now() < lastStart;
    const result = await publishByIntent(rows, (row) => publisher.publish(row), RELAY_INTENT_CONCURRENCY, mayStart);
    await markPublished(db, token, seqsOf(result.published), this.#o.clock.now());
    for (const row of result.published) this.#o.onPublished?.(row);
    // Failed or untried rows: free them now rather than when the lease runs out.
    if (result.published.length < rows.length) await releaseClaim(db, token);
    // Untried rows (the lease ran short) are this relay's to claim again at once.
    if (result.untried > 0) this.#again = true;
    return { claimed: rows.length, published: result.published.length, failures: result.failures };
  }

  async #pruneIfDue(): Promise<void> {
    const now = this.#o.clock.now().getTime();
    if (this.#prunedAt !== undefined && now - this.#prunedAt < PRUNE_INTERVAL_MS) return;
    this.#prunedAt = now;
    const cutoff = new Date(now - (this.#o.retentionMs ?? DEFAULT_OUTBOX_RETENTION_MS));
    try {
      const deleted = await deletePublishedBefore(this.#o.database.db, cutoff);
      if (deleted > 0)
        this.#o.logger.info({ deleted, before: cutoff.toISOString() }, "outbox: deleted old published events");
    } catch (err) {
      // Housekeeping only: the next prune tries again.
      this.#o.logger.warn({ err: (err as Error).message }, "outbox: deleting old published events failed");
    }
  }

  /** Events waiting to be published (metrics). */
  outboxDepth(): Promise<number> {
    return outboxDepth(this.#o.database.db);
  }

  /** Stops waking; lets a running drain finish, then tries one last drain if NATS is ready. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#unsubscribe?.();
    await this.#running;
    const publisher = this.#o.publisher;
    if (publisher?.ready) await this.#run();
  }
}

function seqsOf(rows: readonly OutboxRow[]): string[] {
  return rows.map((r) => r.seq);
}
