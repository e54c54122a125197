import { randomUUID } from "node:crypto";
import pg from "pg";

/** How often a LISTEN connection notifies itself to check it still receives: 30 s. */
export const DEFAULT_LISTEN_CHECK_MS = 30_000;
/** How long such a check waits for its own notification: 5 s (less when checks come more often). */
const LISTEN_CHECK_TIMEOUT_MS = 5_000;
/** Payload prefix of those checks; never handed to subscribers. */
const LISTEN_PING_PREFIX = "releasegate-listen-ping:";
/** LISTEN reconnect backoff: 250 ms doubling up to 10 s. */
const LISTEN_RETRY_BASE_MS = 250;
const LISTEN_RETRY_MAX_MS = 10_000;

export interface ListenSessionOptions {
  readonly url: string;
  readonly channel: string;
  readonly onNotify: (payload: string) => void;
  /** Runs after the session was re-established: notifications sent meanwhile are lost. */
  readonly onReconnect?: () => void;
  /** Sends a NOTIFY on `channel` by another path than this session (the pool). */
  readonly notify: (payload: string) => Promise<void>;
  /** Connection errors, and the replacement of a session that stopped delivering. */
  readonly onError: (err: Error) => void;
  /** Liveness check interval in ms; 0 turns it off. Default DEFAULT_LISTEN_CHECK_MS. */
  readonly checkMs?: number;
}

/**
 * A LISTEN on a dedicated client outside the pool (LISTEN is per session),
 * kept alive: re-established with backoff when it closes, and replaced when
 * a periodic self-notification does not come back (a half-open connection
 * never closes by itself). Resolves once listening; the returned function
 * stops it.
 */
export async function openListenSession(o: ListenSessionOptions): Promise<() => Promise<void>> {
  const { url, channel, onNotify, onReconnect } = o;
  let current: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const pings = new Map<string, () => void>();

  const connect = async () => {
    const client = new pg.Client({ connectionString: url });
    client.on("error", (err) => o.onError(err));
    client.on("notification", (msg) => {
      if (msg.channel !== channel) return;
      const payload = msg.payload ?? "";
      if (payload.startsWith(LISTEN_PING_PREFIX)) pings.get(payload)?.();
      else onNotify(payload);
    });
    // Only the live client's end schedules a reconnect (a failed attempt
    // is retried by its own catch).
    client.on("end", () => {
      if (client === current && !stopped) reconnect(0);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pgIdent(channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    current = client;
  };

  const reconnect = (attempt: number) => {
    current = undefined;
    retry = setTimeout(
      () => {
        if (stopped) return;
        connect().then(
          () => onReconnect?.(),
          () => reconnect(attempt + 1),
        );
      },
      Math.min(LISTEN_RETRY_MAX_MS, LISTEN_RETRY_BASE_MS * 2 ** attempt),
    );
    retry.unref();
  };

  // Sends itself a ping through the pool; listens anew when the ping was
  // sent but did not come back (a failed send is the database's trouble,
  // not this connection's: the next check tries again).
  const checkMs = o.checkMs ?? DEFAULT_LISTEN_CHECK_MS;
  let checking = false;
  const check = async () => {
    const listening = current;
    if (checking || stopped || listening === undefined) return;
    checking = true;
    const ping = `${LISTEN_PING_PREFIX}${randomUUID()}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const arrived = new Promise<boolean>((resolve) => {
        pings.set(ping, () => resolve(true));
        timer = setTimeout(() => resolve(false), Math.min(LISTEN_CHECK_TIMEOUT_MS, checkMs));
      });
      await o.notify(ping);
      if ((await arrived) || stopped || listening !== current) return;
      o.onError(new Error(`LISTEN ${channel}: the connection stopped delivering notifications; listening again`));
      reconnect(0);
      // Not awaited: a connection that went silent may never answer its goodbye.
      listening.end().catch(() => undefined);
    } catch (err) {
      o.onError(err as Error);
    } finally {
      clearTimeout(timer);
      pings.delete(ping);
      checking = false;
    }
  };

  await connect();
  const checkTimer = checkMs > 0 ? setInterval(() => void check(), checkMs) : undefined;
  checkTimer?.unref();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    clearInterval(checkTimer);
    await current?.end().catch(() => undefined);
  };
}

function pgIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad channel name ${name}`);
  return name;
}
