import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { type Cast, cast, createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { NatsServerProcess, readStream, uniqueSignalNames } from "./support/nats-fixtures.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "web" };
const names = uniqueSignalNames();
let nats: NatsServerProcess;
let server: TestServer;
let t: Cast;

beforeAll(async () => {
  // Reserved but not started: the server comes up while NATS is unreachable.
  nats = await NatsServerProcess.create();
  server = await startTestServer({
    env: { NATS_URL: nats.url, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
});
afterAll(async () => {
  await server?.stop();
  await nats?.dispose();
});

describe("NATS outages", () => {
  it("keeps votes working while NATS is down and publishes every event once, in order, when it is back", async () => {
    const id = await registerIntent(server, t.ada, project);
    const dave = await token({ sub: "dave", orgs: { acme: "member" } });
    const vote = { project, releaseIntentId: id, targetEnvironment: "prod" };
    // kind:voter:decision of every event, in commit order: the votes and the approval request's life.
    const expected: string[] = [];
    const cast = async (tok: string, who: string, decision: "approved" | "rejected") => {
      const client = server.client(PolicyService, tok);
      await (decision === "approved" ? client.externalApproveRelease(vote) : client.externalRejectRelease(vote));
      expected.push(`approval.decided:${who}:${decision}`);
    };

    // 1. NATS never reached since start. bob's first vote opens the request (its event comes first).
    expected.push("approval.requested:bob:pending");
    await cast(t.bob, "bob", "approved");
    await cast(t.carol, "carol", "rejected");
    expect(await server.app.relay.outboxDepth()).toBe(3);

    await nats.start();
    await waitFor(async () => ((await server.app.relay.outboxDepth()) === 0 ? true : undefined), 15_000, "outbox drained");

    // 2. NATS dies while the server runs.
    await nats.stop();
    await cast(t.bob, "bob", "rejected");
    await cast(t.carol, "carol", "approved");
    await cast(dave, "dave", "approved");
    // dave's is the second current approval of two: the request is approved, after his vote.
    expected.push("approval.approved:dave:approved");
    expect(await server.app.relay.outboxDepth()).toBe(4);

    await nats.start();
    await waitFor(async () => ((await server.app.relay.outboxDepth()) === 0 ? true : undefined), 20_000, "outbox drained again");

    const nc = await connect({ servers: nats.url });
    try {
      const stored = await readStream(nc, names.stream);
      expect(stored.map((m) => `${m.event.kind}:${m.event.voter_user_id}:${m.event.decision}`)).toEqual(expected);
      expect(new Set(stored.map((m) => m.msgId)).size).toBe(7);

      // What a durable consumer sees: the same seven, each once.
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(names.stream, { durable_name: "outage-check", ack_policy: AckPolicy.Explicit });
      const consumer = await jetstream(nc).consumers.get(names.stream, "outage-check");
      const seen: string[] = [];
      const batch = await consumer.fetch({ max_messages: 10, expires: 1_000 });
      for await (const m of batch) {
        seen.push(String(m.json<{ event_id: string }>().event_id));
        m.ack();
      }
      expect(seen).toEqual(stored.map((m) => m.event.event_id));
    } finally {
      await nc.close();
    }
  });
});
