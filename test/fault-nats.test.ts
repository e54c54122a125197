import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REQUIRED_APPROVALS_MAX } from "../src/policy/policy.js";
import { waitFor } from "./support/approval-fixtures.js";
import { expectReplayConsistent, lifecycleCounts, outboxCounts, outboxKinds, prepareBurst, runBurst, sumCounts } from "./support/burst.js";
import { NatsServerProcess, uniqueSignalNames } from "./support/nats-fixtures.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// NATS is SIGKILLed in the middle of a burst of votes and restarted later in
// the same burst, twice. Votes keep succeeding; afterwards a durable
// JetStream consumer sees every decision exactly once.

const CLIENTS = 50;
const OPS = 6;
const counters = new SuiteCounters("fault-nats");
const names = uniqueSignalNames();
let nats: NatsServerProcess;
let server: TestServer;
let admin: string;

beforeAll(async () => {
  nats = await NatsServerProcess.create();
  await nats.start();
  server = await startTestServer({
    kind: "postgres",
    env: { NATS_URL: nats.url, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
  });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(async () => {
  counters.write();
  await server?.stop();
  await nats?.dispose();
});

describe("NATS killed and restarted mid-burst", () => {
  it("loses and doubles no event for a durable JetStream consumer", { timeout: 120_000 }, async () => {
    // More approvals required than there are voters: the request stays pending and every vote is taken.
    const fixture = await prepareBurst(server.grpc(admin), { intents: 3, required: REQUIRED_APPROVALS_MAX });
    const tokens = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => token({ sub: `voter-${i}`, orgs: { acme: "member" } })),
    );
    const transports = tokens.map((t) => server.grpc(t));
    // Create the durable consumer before any event, so it must see them all.
    {
      const nc = await connect({ servers: nats.url });
      await waitFor(async () => {
        try {
          await (await jetstreamManager(nc)).streams.info(names.stream);
          return true;
        } catch {
          return undefined;
        }
      }, 10_000, "stream created by the server");
      await (await jetstreamManager(nc)).consumers.add(names.stream, { durable_name: "fault", ack_policy: AckPolicy.Explicit });
      await nc.close();
    }

    let kills = 0;
    const total = CLIENTS * OPS;
    // Kill and restart twice, at fixed points of the burst's acknowledged votes.
    const kill = async () => {
      kills++;
      await nats.stop();
    };
    const plan = new Map<number, () => Promise<void>>([
      [Math.floor(total * 0.15), () => kill()],
      [Math.floor(total * 0.27), () => nats.start()],
      [Math.floor(total * 0.42), () => kill()],
      [Math.floor(total * 0.57), () => nats.start()],
    ]);
    const result = await runBurst(fixture, CLIENTS, OPS, (i) => transports[i]!, {
      seed: 11,
      onAck: async (n) => {
        const action = plan.get(n);
        if (action === undefined) return;
        plan.delete(n);
        await action();
      },
    });
    // Whatever the burst did not reach, finish: NATS must end up running.
    for (const action of plan.values()) await action();
    expect(Object.fromEntries(result.errors), "votes fail while only NATS is down").toEqual({});
    expect(kills).toBe(2);

    const votes = await expectReplayConsistent(server.grpc(admin), fixture, result.acked);
    const lifecycleKinds = await lifecycleCounts(server.grpc(admin), fixture);
    const lifecycle = sumCounts(lifecycleKinds);
    expect(votes).toBe(result.acked.length);
    expect(Object.fromEntries(lifecycleKinds), "one request opened per intent, still pending").toEqual({
      request_pending: fixture.intentIds.length,
    });
    // Each history row (vote or request transition) has one event.
    const decisions = votes + lifecycle;
    await waitFor(
      async () => ((await outboxCounts(server.db.database.db, fixture)).pending === 0 ? true : undefined),
      30_000,
      "outbox drained after NATS came back",
    );
    const outbox = await outboxCounts(server.db.database.db, fixture);
    expect(Object.fromEntries(await outboxKinds(server.db.database.db, fixture)), "outbox events by kind").toEqual({
      "approval.decided": votes,
      "approval.requested": lifecycle,
    });

    const nc = await connect({ servers: nats.url });
    try {
      const consumer = await jetstream(nc).consumers.get(names.stream, "fault");
      const seen: string[] = [];
      while (seen.length < decisions) {
        const batch = await consumer.fetch({ max_messages: 200, expires: 1_000 });
        let got = 0;
        for await (const m of batch) {
          seen.push(String(m.json<{ event_id: string }>().event_id));
          m.ack();
          got++;
        }
        if (got === 0) break;
      }
      // Nothing more arrives after the last expected one.
      const extra = await consumer.fetch({ max_messages: 10, expires: 1_000 });
      for await (const m of extra) seen.push(String(m.json<{ event_id: string }>().event_id));
      expect(seen.length, "events seen by the consumer").toBe(decisions);
      expect(new Set(seen)).toEqual(new Set(outbox.eventIds));
    } finally {
      await nc.close();
    }
    counters.add("NATS SIGKILLs mid-burst (then restart)", kills, "votes kept succeeding");
    counters.add("decisions across NATS outages", decisions, "durable consumer saw each exactly once");
  });
});
