/**
 * Reference deploy coordinator: follows approval decisions on JetStream with
 * a durable consumer, re-evaluates the release intent through
 * EvaluatePolicies, and prints "released <intent> ..." once every policy
 * passes. Each message is acked after it was evaluated (nak'ed, redelivered
 * later, when evaluation failed), so a restart resumes where it left off.
 *
 *   RELEASEGATE_TOKEN=$(npm run -s token -- --sub coordinator --org acme=member --service) \
 *   NATS_URL=nats://127.0.0.1:4222 npx tsx scripts/coordinator.ts
 *
 * Settings (environment): RELEASEGATE_SERVER (default http://127.0.0.1:50051;
 * `host:port` works; RELEASEGATE_URL is its deprecated old name),
 * RELEASEGATE_TOKEN (required), NATS_URL (default nats://127.0.0.1:4222),
 * NATS_STREAM and NATS_SUBJECT_PREFIX (the server's defaults),
 * COORDINATOR_DURABLE (consumer name, default reference-coordinator).
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { parseApprovalEvent } from "../src/approval/event.js";
import { failureOf } from "../src/cli/exit-codes.js";
import { DEFAULT_SERVER, parseServerAddress } from "../src/cli/server-address.js";
import { DEFAULT_NATS_STREAM, DEFAULT_NATS_SUBJECT_PREFIX } from "../src/config.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";

/** Wait between checks for a stream the server has not created yet, in ms. */
const STREAM_WAIT_MS = 1_000;
/** Redelivery delay after a failed evaluation, in ms. */
const RETRY_DELAY_MS = 5_000;

const env = (name: string, fallback: string) => process.env[name] || fallback;
/** RELEASEGATE_SERVER, as the CLI reads it; RELEASEGATE_URL (its old name here) still works, with a warning. */
function serverAddress(): string {
  const { RELEASEGATE_SERVER: server, RELEASEGATE_URL: old } = process.env;
  if (!server && old)
    console.error("warning: RELEASEGATE_URL is deprecated: set RELEASEGATE_SERVER (the name the CLI reads) instead");
  const [value, source] = server ? [server, "RELEASEGATE_SERVER"] : old ? [old, "RELEASEGATE_URL"] : [DEFAULT_SERVER, "default"];
  try {
    return parseServerAddress(value, source);
  } catch (err) {
    const failure = failureOf(err);
    for (const line of failure.lines) console.error(line);
    process.exit(failure.exitCode);
  }
}
const serverUrl = serverAddress();
const token = process.env.RELEASEGATE_TOKEN;
const natsUrl = env("NATS_URL", "nats://127.0.0.1:4222");
const stream = env("NATS_STREAM", DEFAULT_NATS_STREAM);
const prefix = env("NATS_SUBJECT_PREFIX", DEFAULT_NATS_SUBJECT_PREFIX);
const durable = env("COORDINATOR_DURABLE", "reference-coordinator");
if (token === undefined || token === "") {
  console.error("RELEASEGATE_TOKEN is required (a token with policy.evaluate in the organisation)");
  process.exit(2);
}

const policies = createClient(
  PolicyService,
  createConnectTransport({
    baseUrl: serverUrl,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  }),
);

const nc = await connect({ servers: natsUrl, name: "reference-coordinator", maxReconnectAttempts: -1 });
const jsm = await jetstreamManager(nc);

const isNotFound = (err: unknown, code: number) => err instanceof JetStreamApiError && err.code === code;

// The server creates the stream at start; wait for it rather than racing it.
for (;;) {
  try {
    await jsm.streams.info(stream);
    break;
  } catch (err) {
    if (!isNotFound(err, JetStreamApiCodes.StreamNotFound)) throw err;
    console.log(`waiting for stream ${stream}`);
    await new Promise((r) => setTimeout(r, STREAM_WAIT_MS));
  }
}
try {
  await jsm.consumers.info(stream, durable);
} catch (err) {
  if (!isNotFound(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: `${prefix}.>`,
  });
}
const messages = await (await jetstream(nc).consumers.get(stream, durable)).consume();
console.log(`coordinator: following ${stream} (${prefix}.>) as durable consumer ${durable}`);

const stop = () => {
  void messages.close().then(() => nc.drain());
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

const released = new Set<string>();
for await (const m of messages) {
  const event = parseApprovalEvent(m.string());
  if (event === undefined) {
    // Not ours (another publisher on the subjects): never redeliver it.
    console.error(`skipping message ${m.seq} on ${m.subject}: not an approval event`);
    m.term();
    continue;
  }
  const key = `${event.release_intent_id}/${event.environment}`;
  try {
    const res = await policies.evaluatePolicies({
      project: { organisation: event.organisation, project: event.project },
      targetEnvironment: event.environment,
      releaseIntentId: event.release_intent_id,
    });
    if (res.allPassed) {
      if (!released.has(key))
        console.log(
          `released ${event.release_intent_id} to ${event.environment} (${event.organisation}/${event.project})`,
        );
      released.add(key);
    } else {
      const pending = res.evaluations.filter((e) => !e.passed).map((e) => `${e.policyName}: ${e.reason}`);
      console.log(`waiting ${event.release_intent_id} for ${event.environment}: ${pending.join("; ")}`);
    }
    m.ack();
  } catch (err) {
    console.error(`evaluation of ${key} failed, retrying: ${(err as Error).message}`);
    m.nak(RETRY_DELAY_MS);
  }
}
