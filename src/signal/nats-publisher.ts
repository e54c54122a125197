import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { OutboxRow } from "../db/outbox.repository.js";
import type { Logger } from "../logger.js";
import { FOREST_EVALUATE_SUBJECT } from "./subject.js";

/** Where the relay sends events; narrow so tests and other transports can stand in. */
export interface EventPublisher {
  /** True while connected and the stream is known to exist: worth trying to publish. */
  readonly ready: boolean;
  /** Publishes one event; rejects when it may not have reached JetStream. */
  publish(row: OutboxRow): Promise<void>;
}

export interface NatsPublisherOptions {
  readonly servers: string;
  readonly stream: string;
  readonly subjectPrefix: string;
  readonly logger: Logger;
  /** Called whenever the publisher becomes ready (first connect and every reconnect). */
  readonly onReady?: () => void;
}

/** Wait for a JetStream ack, in ms; an unacked publish is retried (deduplicated by Nats-Msg-Id). */
const PUBLISH_TIMEOUT_MS = 2_000;
/**
 * Deduplication window of a stream we create: a publish whose ack was lost is
 * retried with the same Nats-Msg-Id, possibly after a long NATS outage; the
 * server default (2 min) would let such a retry through as a second message.
 */
const STREAM_DUPLICATE_WINDOW_MS = 60 * 60 * 1000;
/** Longest wait for NATS to flush on shutdown, in ms. */
const DRAIN_TIMEOUT_MS = 2_000;
/** First-connect retry backoff bounds, in ms; later reconnects are the client's job. */
const CONNECT_BACKOFF_MIN_MS = 250;
const CONNECT_BACKOFF_MAX_MS = 5_000;

/**
 * The NATS side of the signal: connects in the background (a NATS outage at
 * start does not stop the server), creates the stream if missing, and
 * publishes each event to JetStream (with `Nats-Msg-Id` = event id) and then
 * the Forest-compatible core message (`forest.intent.evaluate`, bare id).
 */
export class NatsPublisher implements EventPublisher {
  readonly #options: NatsPublisherOptions;
  #nc?: NatsConnection;
  #js?: JetStreamClient;
  #connected = false;
  #streamReady = false;
  #stopped = false;
  #connecting?: Promise<void>;
  #retryTimer?: NodeJS.Timeout;
  #checkingStream = false;

  constructor(options: NatsPublisherOptions) {
    this.#options = options;
  }

  get ready(): boolean {
    return this.#connected && this.#streamReady && !this.#stopped;
  }

  /** Starts connecting; resolves at once (never fails on an unreachable NATS). */
  start(): void {
    this.#connecting = this.#connect(CONNECT_BACKOFF_MIN_MS);
  }

  async #connect(backoffMs: number): Promise<void> {
    if (this.#stopped) return;
    const { logger } = this.#options;
    try {
      const nc = await connect({
        servers: this.#options.servers,
        name: "releasegate",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 2_000,
      });
      if (this.#stopped) {
        await nc.close();
        return;
      }
      this.#nc = nc;
      this.#js = jetstream(nc);
      this.#connected = true;
      logger.info({ server: nc.getServer() }, "NATS connected");
      void this.#watchStatus(nc);
      this.#checkStream();
    } catch (err) {
      logger.warn({ err: (err as Error).message, retryInMs: backoffMs }, "NATS unavailable, retrying");
      this.#retryTimer = setTimeout(() => {
        this.#connecting = this.#connect(Math.min(backoffMs * 2, CONNECT_BACKOFF_MAX_MS));
      }, backoffMs);
    }
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        this.#connected = false;
        this.#options.logger.warn({ server: s.server }, "NATS disconnected; events wait in the outbox");
      } else if (s.type === "reconnect") {
        this.#connected = true;
        this.#options.logger.info({ server: s.server }, "NATS reconnected");
        // A restarted server may have lost the stream: check again before publishing.
        this.#checkStream();
      }
    }
  }

  /**
   * (Re)checks the stream in the background until it exists; the publisher
   * is not ready meanwhile. Retries with backoff while connected.
   */
  #checkStream(backoffMs = CONNECT_BACKOFF_MIN_MS): void {
    this.#streamReady = false;
    if (this.#checkingStream) return;
    this.#checkingStream = true;
    this.#ensureStream().then(
      () => {
        this.#checkingStream = false;
      },
      (err: unknown) => {
        this.#checkingStream = false;
        if (this.#stopped) return;
        this.#options.logger.warn({ err: (err as Error).message, retryInMs: backoffMs }, "JetStream stream check failed");
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(
          () => this.#checkStream(Math.min(backoffMs * 2, CONNECT_BACKOFF_MAX_MS)),
          backoffMs,
        );
      },
    );
  }

  async #ensureStream(): Promise<void> {
    const nc = this.#nc;
    if (nc === undefined) return;
    const { stream, subjectPrefix, logger } = this.#options;
    const jsm = await jetstreamManager(nc, { timeout: PUBLISH_TIMEOUT_MS });
    try {
      const info = await jsm.streams.info(stream);
      const wanted = `${subjectPrefix}.>`;
      if (!info.config.subjects?.includes(wanted))
        logger.warn({ stream, subjects: info.config.subjects, wanted }, "JetStream stream exists without our subjects");
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      await jsm.streams.add({
        name: stream,
        subjects: [`${subjectPrefix}.>`],
        duplicate_window: nanos(STREAM_DUPLICATE_WINDOW_MS),
      });
      logger.info({ stream, subjects: `${subjectPrefix}.>` }, "JetStream stream created");
    }
    this.#streamReady = true;
    this.#options.onReady?.();
  }

  async publish(row: OutboxRow): Promise<void> {
    const js = this.#js;
    const nc = this.#nc;
    if (js === undefined || nc === undefined || !this.ready) throw new Error("NATS not ready");
    // JetStream first: the core message below is only a wake-up and may be repeated.
    try {
      await js.publish(row.subject, JSON.stringify(row.event), {
        msgID: row.eventId,
        timeout: PUBLISH_TIMEOUT_MS,
      });
    } catch (err) {
      // E.g. the stream was deleted: make sure it exists before the relay retries.
      // A stream's own rejection (a limit, a header check) concerns this message
      // only: rechecking would make the publisher refuse every other intent's
      // events until the check returns.
      if (this.#connected && !rejectedByStream(err)) this.#checkStream();
      throw err;
    }
    nc.publish(FOREST_EVALUATE_SUBJECT, row.releaseIntentId);
  }

  /** Flushes what was published and closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    await this.#connecting;
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (!this.#connected) return await nc.close();
      // A server that stopped answering must not hold up shutdown.
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), DRAIN_TIMEOUT_MS);
      });
      if ((await Promise.race([nc.drain(), timedOut])) === "timeout") await nc.close();
    } catch {
      await nc.close();
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The stream answered the publish with an error: it exists and is reachable. */
function rejectedByStream(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code !== JetStreamApiCodes.StreamNotFound;
}
