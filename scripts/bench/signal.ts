import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { approveSeeded, loadCaller, registerIntents, type SeededProject } from "./fixtures.js";
import type { GrpcJsCaller } from "./grpc-js-caller.js";
import { quantile } from "./load.js";
import type { ServerProcess } from "./server-process.js";
import type { BenchSettings } from "./settings.js";

/** How long one event may take to arrive before the run is declared broken. */
const EVENT_TIMEOUT_MS = 10_000;
const STREAM_TIMEOUT_MS = 15_000;

export interface SignalResult {
  readonly approvals: number;
  /** ApproveRelease response → JetStream consumer receipt, ms (negative: the event beat the response). */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** ApproveRelease request sent → receipt, ms. */
  readonly requestToReceiptP50: number;
  readonly arrivedBeforeResponse: number;
}

/**
 * Item 3: sequential approvals on fresh (intent, voter) pairs; an ordered
 * JetStream consumer on the server's stream timestamps each event's arrival.
 */
export async function benchSignal(
  settings: BenchSettings,
  server: ServerProcess,
  seeded: SeededProject,
  nats: { url: string; stream: string },
): Promise<SignalResult> {
  const count = settings.quick ? 20 : 400;
  const intentCount = settings.quick ? 10 : 40;
  const intents = await registerIntents(server.baseUrl, seeded.project, intentCount);
  const voters = await Promise.all(
    Array.from({ length: Math.ceil(count / intentCount) }, (_, i) => loadCaller(server.baseUrl, `signal-${i}`)),
  );
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + STREAM_TIMEOUT_MS;
    for (;;) {
      try {
        await jsm.streams.info(nats.stream);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`stream ${nats.stream} never appeared`, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const consumer = await jetstream(nc).consumers.get(nats.stream, { deliver_policy: "new" } as never);
    const messages = await consumer.consume();
    const arrivals = new Map<string, bigint>();
    const waiters = new Map<string, (at: bigint) => void>();
    const reader = (async () => {
      for await (const m of messages) {
        const at = process.hrtime.bigint();
        const e = m.json<{ release_intent_id: string; voter_user_id: string }>();
        const key = `${e.release_intent_id}/${e.voter_user_id}`;
        const waiter = waiters.get(key);
        if (waiter !== undefined) waiter(at);
        else arrivals.set(key, at);
      }
    })();
    const arrival = (key: string) =>
      new Promise<bigint>((resolve, reject) => {
        const early = arrivals.get(key);
        if (early !== undefined) return resolve(early);
        const timer = setTimeout(() => reject(new Error(`no event for ${key} in ${EVENT_TIMEOUT_MS} ms`)), EVENT_TIMEOUT_MS);
        waiters.set(key, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });

    const afterResponse: number[] = [];
    const afterRequest: number[] = [];
    let early = 0;
    for (let i = 0; i < count; i++) {
      const voterIndex = Math.floor(i / intentCount);
      const intent = intents[i % intentCount] as string;
      const received = arrival(`${intent}/signal-${voterIndex}`);
      const sent = process.hrtime.bigint();
      await approveSeeded(voters[voterIndex] as GrpcJsCaller, seeded, intent);
      const answered = process.hrtime.bigint();
      const at = await received;
      if (at < answered) early++;
      afterResponse.push(Number(at - answered) / 1e6);
      afterRequest.push(Number(at - sent) / 1e6);
    }
    messages.stop();
    await reader;
    afterResponse.sort((a, b) => a - b);
    afterRequest.sort((a, b) => a - b);
    return {
      approvals: count,
      p50: quantile(afterResponse, 0.5),
      p99: quantile(afterResponse, 0.99),
      max: afterResponse[afterResponse.length - 1] ?? Number.NaN,
      requestToReceiptP50: quantile(afterRequest, 0.5),
      arrivedBeforeResponse: early,
    };
  } finally {
    await nc.close();
    for (const voter of voters) voter.close();
  }
}

/** Deletes the run's stream (each run makes its own). */
export async function deleteStream(natsUrl: string, stream: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}
