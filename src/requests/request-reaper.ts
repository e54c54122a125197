import type { Logger } from "../logger.js";

export interface RequestReaperOptions {
  /** One tick: expires what is due (createExpireDueRequests). */
  readonly tick: () => Promise<number>;
  /** Pause between the end of one tick and the start of the next, in ms (config RELEASEGATE_REAPER_INTERVAL_MS). */
  readonly intervalMs: number;
  readonly logger: Logger;
}

/**
 * Runs the reaper on this replica: a tick, then a pause of `intervalMs`,
 * again and again until stop(). Every replica runs one; their ticks never
 * expire a request twice (the tick's SQL skips locked rows). A pending
 * request is therefore expired at most intervalMs plus one tick's time
 * after its expires_at (and counts as expired for every decision from
 * expires_at on, reaper or not). A failing tick (database down) is logged
 * and retried at the next interval.
 */
export class RequestReaper {
  readonly #options: RequestReaperOptions;
  #timer?: NodeJS.Timeout;
  #running?: Promise<void>;
  #stopped = true;

  constructor(options: RequestReaperOptions) {
    this.#options = options;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#run();
    }, ms);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    try {
      const expired = await this.#options.tick();
      if (expired > 0) this.#options.logger.info({ expired }, "approval requests expired");
    } catch (err) {
      this.#options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "approval request reaper tick failed");
    } finally {
      this.#schedule(this.#options.intervalMs);
    }
  }

  /** Stops scheduling and waits for a running tick to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
  }
}
