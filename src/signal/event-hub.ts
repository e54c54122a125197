import { randomUUID } from "node:crypto";
import { sql } from "kysely";
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

/** How often the hub checks that its LISTEN connection still receives, in ms. */
export const DEFAULT_LISTEN_CHECK_MS = 30_000;
/** How long a check waits for its own notification, in ms. */
const LISTEN_CHECK_TIMEOUT_MS = 5_000;
const PING_PREFIX = "ping:";

export interface ApprovalEventHubOptions {
  /** Interval of the LISTEN liveness check; 0 turns it off. */
  readonly listenCheckMs?: number;
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
 * replayed (NATS/JetStream is the durable path). A LISTEN connection dies
 * silently with its server (e.g. a Postgres restart), so the hub notifies
 * itself now and then and listens again when its own ping does not arrive.
 */
export class ApprovalEventHub {
  readonly #database: Database;
  readonly #logger: Logger;
  readonly #subscribers = new Map<number, { filter: EventFilter; listener: Listener }>();
  #nextId = 0;
  #unlisten?: () => Promise<void>;
  readonly #listenCheckMs: number;
  #checkTimer?: NodeJS.Timeout;
  #checking = false;
  #stopped = false;
  readonly #pings = new Map<string, () => void>();

  constructor(database: Database, logger: Logger, options: ApprovalEventHubOptions = {}) {
    this.#database = database;
    this.#logger = logger;
    this.#listenCheckMs = options.listenCheckMs ?? DEFAULT_LISTEN_CHECK_MS;
  }

  async start(): Promise<void> {
    await this.#listen();
    if (this.#listenCheckMs > 0) {
      this.#checkTimer = setInterval(() => void this.#checkListener(), this.#listenCheckMs);
      this.#checkTimer.unref();
    }
  }

  /** Starts listening; returns the unlisten function, undefined when LISTEN failed. */
  async #listen(): Promise<(() => Promise<void>) | undefined> {
    try {
      this.#unlisten = await this.#database.listen(OUTBOX_CHANNEL, (payload) => this.#dispatch(payload));
      return this.#unlisten;
    } catch (err) {
      // Without LISTEN the relay still polls; only live Watch streams go quiet.
      this.#logger.warn({ err: (err as Error).message }, "cannot LISTEN for approval events; Watch streams get none");
      return undefined;
    }
  }

  /** Sends itself a ping through the database; listens anew when it does not come back. */
  async #checkListener(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    const ping = `${PING_PREFIX}${randomUUID()}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const arrived = new Promise<boolean>((resolve) => {
        this.#pings.set(ping, () => resolve(true));
        timer = setTimeout(() => resolve(false), LISTEN_CHECK_TIMEOUT_MS);
      });
      await sql`select pg_notify(${OUTBOX_CHANNEL}, ${ping})`.execute(this.#database.db);
      if ((await arrived) || this.#stopped) return;
      this.#logger.warn("approval event LISTEN connection lost; listening again");
      const old = this.#unlisten;
      this.#unlisten = undefined;
      await old?.().catch(() => undefined);
      if (this.#stopped) return;
      const fresh = await this.#listen();
      // stop() may have run meanwhile: do not leave a LISTEN connection behind.
      if (this.#stopped) await fresh?.();
    } catch (err) {
      // The database itself is unreachable: try again at the next check.
      this.#logger.warn({ err: (err as Error).message }, "approval event LISTEN check failed");
    } finally {
      clearTimeout(timer);
      this.#pings.delete(ping);
      this.#checking = false;
    }
  }

  #dispatch(payload: string): void {
    if (payload.startsWith(PING_PREFIX)) {
      this.#pings.get(payload)?.();
      return;
    }
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

  /** Calls `listener` for each matching committed event; returns the unsubscribe function. */
  subscribe(filter: EventFilter, listener: Listener): () => void {
    const id = this.#nextId++;
    this.#subscribers.set(id, { filter, listener });
    return () => {
      this.#subscribers.delete(id);
    };
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#checkTimer);
    this.#subscribers.clear();
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }
}
