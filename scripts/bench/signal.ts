import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { approveSeeded, loadCaller, registerIntents, type SeededProject } from "./fixtures.js";
import { type BenchSettings, quantile, waitFor } from "./load.js";

/** How long the server's stream may take to appear, and one event to arrive, in milliseconds. */
const STREAM_TIMEOUT_MS = 15_000;
const EVENT_TIMEOUT_MS = 10_000;

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
 * Sequential approvals on fresh (intent, voter) pairs; an ordered JetStream
 * consumer on the server's stream timestamps each event's arrival.
 */
export async function benchSignal(settings: BenchSettings, baseUrl: string, seeded: SeededProject, nats: { url: string; stream: string }): Promise<SignalResult> {
  const count = settings.quick ? 20 : 400;
  const intents = await registerIntents(baseUrl, seeded.project, settings.quick ? 10 : 40);
  const voters = await Promise.all(Array.from({ length: Math.ceil(count / intents.length) }, (_, i) => loadCaller(baseUrl, `signal-${i}`)));
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await waitFor(`stream ${nats.stream} appearing`, STREAM_TIMEOUT_MS, () => jsm.streams.info(nats.stream).then(() => true, () => false));
    const messages = await (await jetstream(nc).consumers.get(nats.stream, { deliver_policy: "new" } as never)).consume();
    // Events of earlier sections' votes may still come; only awaited ones count.
    const waiters = new Map<string, (at: bigint) => void>();
    const reader = (async () => {
      for await (const m of messages) {
        const e = m.json<{ release_intent_id: string; voter_user_id: string }>();
        waiters.get(`${e.release_intent_id}/${e.voter_user_id}`)?.(process.hrtime.bigint());
      }
    })();
    const afterResponse: number[] = [];
    const afterRequest: number[] = [];
    let early = 0;
    for (let i = 0; i < count; i++) {
      const voter = Math.floor(i / intents.length);
      const intent = intents[i % intents.length] as string;
      const received = new Promise<bigint>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event for ${intent} in ${EVENT_TIMEOUT_MS} ms`)), EVENT_TIMEOUT_MS);
        waiters.set(`${intent}/signal-${voter}`, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });
      const sent = process.hrtime.bigint();
      await approveSeeded(voters[voter] as (typeof voters)[number], seeded, intent);
      const answered = process.hrtime.bigint();
      const at = await received;
      if (at < answered) early++;
      afterResponse.push(Number(at - answered) / 1e6);
      afterRequest.push(Number(at - sent) / 1e6);
    }
    messages.stop();
    await reader;
    for (const latencies of [afterResponse, afterRequest]) latencies.sort((a, b) => a - b);
    const [p50, p99, max] = [0.5, 0.99, 1].map((q) => quantile(afterResponse, q)) as [number, number, number];
    return { approvals: count, p50, p99, max, requestToReceiptP50: quantile(afterRequest, 0.5), arrivedBeforeResponse: early };
  } finally {
    await nc.close();
    for (const voter of voters) voter.close();
  }
}

/** Deletes a run's stream (each server gets its own). */
export async function deleteStream(natsUrl: string, stream: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  await nc.close();
}
