import { HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** How often the background probe checks the database, in milliseconds. */
export const DEFAULT_HEALTH_PROBE_INTERVAL_MS = 5_000;
/** A database ping slower than this counts as "not answering", in milliseconds. */
export const DEFAULT_HEALTH_PROBE_TIMEOUT_MS = 2_000;

type Phase = "starting" | "ready" | "draining";

export interface HealthOptions {
  /** Resolves when the database answers; rejects (or is aborted) otherwise. */
  readonly ping: (signal: AbortSignal) => Promise<void>;
  /** Fully-qualified names of the services served, e.g. `forest.v1.PolicyService`. */
  readonly services: readonly string[];
  readonly probeIntervalMs?: number;
  readonly probeTimeoutMs?: number;
}

/**
 * The server's serving status, shared by gRPC health and the admin /readyz.
 * SERVING only once `markReady()` was called (migrations ran) and the last
 * database probe answered; NOT_SERVING from `markDraining()` on.
 */
export class ServerHealth {
  readonly #options: HealthOptions;
  readonly #services: ReadonlySet<string>;
  readonly #watchers = new Set<() => void>();
  #phase: Phase = "starting";
  #databaseAnswers = false;
  #timer?: NodeJS.Timeout;
  #probing?: Promise<ServingStatus>;
  #probedAt = 0;

  constructor(options: HealthOptions) {
    this.#options = options;
    this.#services = new Set(["", ...options.services]);
  }

  /** Known service names ("" is the whole server). */
  knows(service: string): boolean {
    return this.#services.has(service);
  }

  get draining(): boolean {
    return this.#phase === "draining";
  }

  /** Current status of the server (all services share it). */
  status(): ServingStatus {
    return this.#phase === "ready" && this.#databaseAnswers ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /**
   * Pings the database and updates the status; returns the new status.
   * Concurrent callers share one ping, and a ping younger than `maxAgeMs` is
   * reused, so a burst of probes is not a burst of queries.
   */
  probe(maxAgeMs = 0): Promise<ServingStatus> {
    if (this.#probing !== undefined) return this.#probing;
    if (maxAgeMs > 0 && Date.now() - this.#probedAt < maxAgeMs) return Promise.resolve(this.status());
    this.#probing = this.#ping().finally(() => {
      this.#probing = undefined;
      this.#probedAt = Date.now();
    });
    return this.#probing;
  }

  async #ping(): Promise<ServingStatus> {
    const timeout = AbortSignal.timeout(this.#options.probeTimeoutMs ?? DEFAULT_HEALTH_PROBE_TIMEOUT_MS);
    let answers: boolean;
    try {
      await this.#options.ping(timeout);
      answers = !timeout.aborted;
    } catch {
      answers = false;
    }
    this.#update(() => {
      this.#databaseAnswers = answers;
    });
    return this.status();
  }

  /** Migrations ran: probe the database and start probing it periodically. */
  async markReady(): Promise<void> {
    if (this.#phase !== "starting") return;
    this.#update(() => {
      this.#phase = "ready";
    });
    await this.probe();
    this.#timer = setInterval(() => void this.probe(), this.#options.probeIntervalMs ?? DEFAULT_HEALTH_PROBE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Shutting down: NOT_SERVING from now on, so load balancers stop routing here. */
  markDraining(): void {
    clearInterval(this.#timer);
    this.#update(() => {
      this.#phase = "draining";
    });
  }

  /** Calls `onChange` after every status change; returns an unsubscribe function. */
  subscribe(onChange: () => void): () => void {
    this.#watchers.add(onChange);
    return () => this.#watchers.delete(onChange);
  }

  #update(change: () => void): void {
    const before = this.status();
    const wasDraining = this.draining;
    change();
    if (before === this.status() && wasDraining === this.draining) return;
    for (const w of this.#watchers) w();
  }
}
