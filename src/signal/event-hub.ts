import { type ApprovalDecidedEvent, parseApprovalEvent } from "../approval/event.js";
import type { Database } from "../db/database.js";
import { findOutboxEvent, OUTBOX_CHANNEL } from "../db/outbox.repository.js";
import type { Logger } from "../logger.js";
import { isUuid } from "../policy/validate.js";

/** Which events a subscriber wants; unset fields match everything. */
export interface EventFilter {
  readonly organisation?: string;
  readonly project?: string;
  readonly environment?: string;
}

type Listener = (event: ApprovalDecidedEvent) => void;
/** Called when events may have been missed (the LISTEN connection was re-established). */
type GapListener = () => void;

/** Default retry interval of a LISTEN that failed when the hub started: 5 s. */
export const DEFAULT_LISTEN_RETRY_MS = 5_000;

export interface ApprovalEventHubOptions {
  /** Retry interval of a LISTEN that failed at start, in ms. Default DEFAULT_LISTEN_RETRY_MS. */
  readonly listenRetryMs?: number;
  /** Called once per interruption of the feed (before subscribers hear of it), e.g. to count it. */
  readonly onInterrupted?: () => void;
}

function matches(f: EventFilter, e: ApprovalDecidedEvent): boolean {
  return (
    (f.organisation === undefined || f.organisation === e.organisation) &&
    (f.project === undefined || f.project === e.project) &&
    (f.environment === undefined || f.environment === e.environment)
  );
}

/**
 * Fans committed approval events out to in-process subscribers (Watch
 * streams, the relay's wake-up). Fed by the outbox NOTIFY, so every replica
 * sees every replica's events, in commit order, with or without NATS. A live
 * feed: events committed while the listen connection is down are not
 * replayed here; subscribers are told instead (`onGap`), so a Watch stream
 * can end and its client resume from its last event (NATS/JetStream is the
 * durable path). Keeping the LISTEN connection alive (closed, or silent
 * without closing) is Database.listen's job; the hub only retries a LISTEN
 * that failed when it started.
 */
export class ApprovalEventHub {
  readonly #database: Database;
  readonly #logger: Logger;
  readonly #subscribers = new Map<number, { filter: EventFilter; listener: Listener; onGap?: GapListener }>();
  #nextId = 0;
  #unlisten?: () => Promise<void>;
  #retry?: NodeJS.Timeout;
  #stopped = false;
  readonly #retryMs: number;
  readonly #onInterrupted?: () => void;

  constructor(database: Database, logger: Logger, options: ApprovalEventHubOptions = {}) {
    this.#database = database;
    this.#logger = logger;
    this.#retryMs = options.listenRetryMs ?? DEFAULT_LISTEN_RETRY_MS;
    this.#onInterrupted = options.onInterrupted;
  }

  async start(): Promise<void> {
    await this.#listen();
  }

  /** Starts listening; on failure retries every `listenRetryMs` until it works or the hub stops. */
  async #listen(): Promise<void> {
    try {
      const unlisten = await this.#database.listen(
        OUTBOX_CHANNEL,
        (payload) => this.#dispatch(payload),
        () => this.#gap(),
      );
      // stop() may have run meanwhile: do not leave a LISTEN connection behind.
      if (this.#stopped) await unlisten();
      else this.#unlisten = unlisten;
    } catch (err) {
      // Without LISTEN the relay still polls; only live Watch streams go quiet meanwhile.
      this.#logger.warn(
        { err: (err as Error).message, retryInMs: this.#retryMs },
        "cannot LISTEN for approval events; Watch streams get none until it works",
      );
      if (this.#stopped) return;
      this.#retry = setTimeout(() => void this.#listen(), this.#retryMs);
      this.#retry.unref();
    }
  }

  #dispatch(payload: string): void {
    const event = parseApprovalEvent(payload);
    if (event !== undefined) this.#deliver(event);
    else if (isUuid(payload))
      // The event was too large for NOTIFY: read it from the outbox.
      findOutboxEvent(this.#database.db, payload).then(
        (e) => e !== undefined && this.#deliver(e),
        (err: unknown) => this.#logger.warn({ err }, "cannot read notified approval event"),
      );
  }

  #deliver(event: ApprovalDecidedEvent): void {
    for (const { filter, listener } of this.#subscribers.values()) {
      if (!matches(filter, event)) continue;
      try {
        listener(event);
      } catch (err) {
        this.#logger.warn({ err }, "approval event subscriber failed");
      }
    }
  }

  /** The LISTEN connection was re-established: notifications sent meanwhile are lost. */
  #gap(): void {
    this.#logger.warn({ subscribers: this.#subscribers.size }, "approval event feed was interrupted; telling subscribers");
    this.#onInterrupted?.();
    for (const { onGap } of this.#subscribers.values()) {
      try {
        onGap?.();
      } catch (err) {
        this.#logger.warn({ err }, "approval event subscriber failed");
      }
    }
  }

  /**
   * Calls `listener` for each matching committed event, and `onGap` when
   * events may have been missed; returns the unsubscribe function.
   */
  subscribe(filter: EventFilter, listener: Listener, onGap?: GapListener): () => void {
    const id = this.#nextId++;
    this.#subscribers.set(id, { filter, listener, onGap });
    return () => {
      this.#subscribers.delete(id);
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#subscribers.clear();
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }
}
