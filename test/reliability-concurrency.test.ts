import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../src/db/database.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { REQUIRED_APPROVALS_MAX } from "../src/policy/policy.js";
import { waitFor } from "./support/approval-fixtures.js";
import {
  type AckedVote,
  type BurstFixture,
  currentVotes,
  expectReplayConsistent,
  lifecycleCounts,
  outboxCounts,
  outboxKinds,
  prepareBurst,
  runBurst,
  sumCounts,
} from "./support/burst.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { NatsServerProcess, readStream, uniqueSignalNames } from "./support/nats-fixtures.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Randomised bursts of votes, vote changes and evaluations from many clients
// against two server instances (each with its own pool) on one Postgres
// database: no error reaches a caller, the current votes equal a serial
// replay of the recorded history, and each decision has exactly one outbox
// event and one JetStream message. The gate requires more approvals than
// there are voters (REQUIRED_APPROVALS_MAX), so each intent's approval request
// stays pending and every vote is taken (a vote on an approved request would
// be FAILED_PRECONDITION by design).

const CLIENTS = Number(process.env.BURST_CLIENTS ?? 60);
const OPS = Number(process.env.BURST_OPS ?? 6);
if (CLIENTS >= REQUIRED_APPROVALS_MAX) throw new Error(`BURST_CLIENTS must stay below ${REQUIRED_APPROVALS_MAX}: the gate must never pass`);

const counters = new SuiteCounters("reliability-concurrency");
const names = uniqueSignalNames();
let nats: NatsServerProcess;
let shared: TestDatabase;
let second: TestDatabase;
let a: TestServer;
let b: TestServer;
const voterTokens: string[] = [];
let admin: string;

beforeAll(async () => {
  nats = await NatsServerProcess.create();
  await nats.start();
  shared = await createTestDatabase("postgres");
  const database = await openDatabase({ databaseUrl: shared.url!, dataDir: "/nonexistent", poolSize: 10 });
  second = { database, url: shared.url, dispose: () => database.destroy() };
  const env = { NATS_URL: nats.url, NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix };
  a = await startTestServer({ shared, env });
  b = await startTestServer({ shared: second, env });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  for (let i = 0; i < CLIENTS; i++) voterTokens.push(await token({ sub: `voter-${i}`, orgs: { acme: "member" } }));
});
afterAll(async () => {
  counters.write();
  await a?.stop();
  await b?.stop();
  await second?.dispose();
  await shared?.dispose();
  await nats?.dispose();
});

/**
 * Replay-consistent on both replicas, one vote row per acknowledged vote, and
 * exactly one approval request opened per intent (the gate requires more
 * approvals than there are voters, so it stays pending and votes go on).
 * Returns the history rows (votes + lifecycle), each of which has one event.
 */
async function expectConsistent(fixture: BurstFixture, acked: readonly AckedVote[]): Promise<number> {
  const votes = await expectReplayConsistent(a.grpc(admin), fixture, acked);
  const lifecycle = await lifecycleCounts(a.grpc(admin), fixture);
  for (const intentId of fixture.intentIds)
    expect(Object.fromEntries(await currentVotes(b.grpc(admin), fixture, intentId)), "replica B agrees").toEqual(
      Object.fromEntries(await currentVotes(a.grpc(admin), fixture, intentId)),
    );
  expect(votes, "one history row per acknowledged vote").toBe(acked.length);
  expect(Object.fromEntries(lifecycle), "one request opened per intent, still pending").toEqual({
    request_pending: fixture.intentIds.length,
  });
  return votes + sumCounts(lifecycle);
}

describe("bursts on two replicas sharing one database", () => {
  it(`${CLIENTS} clients × ${OPS} random votes/changes/evaluations: no errors, replay-consistent, one event per decision`, async () => {
    const fixture = await prepareBurst(a.grpc(admin), { intents: 3, required: REQUIRED_APPROVALS_MAX });
    const transports = voterTokens.map((tok, i) => (i % 2 === 0 ? a : b).grpc(tok));
    const result = await runBurst(fixture, CLIENTS, OPS, (i) => transports[i]!, { seed: 7 });

    expect(Object.fromEntries(result.errors), "errors surfaced to callers").toEqual({});
    const decisions = await expectConsistent(fixture, result.acked);

    const outbox = await outboxCounts(shared.database.db, fixture);
    expect(outbox.total, "one outbox event per decision").toBe(decisions);
    expect(Object.fromEntries(await outboxKinds(shared.database.db, fixture)), "outbox events by kind").toEqual({
      "approval.decided": result.acked.length,
      "approval.requested": fixture.intentIds.length,
    });
    await waitFor(async () => ((await outboxCounts(shared.database.db, fixture)).pending === 0 ? true : undefined), 20_000, "outbox drained");

    const nc = await connect({ servers: nats.url });
    try {
      const events = (await readStream(nc, names.stream)).filter((e) => fixture.intentIds.includes(String(e.event.release_intent_id)));
      expect(events.length, "one JetStream message per decision").toBe(decisions);
      expect(new Set(events.map((e) => e.msgId)).size).toBe(decisions);
      expect(new Set(events.map((e) => e.msgId))).toEqual(new Set(outbox.eventIds));
    } finally {
      await nc.close();
    }
    counters.add("concurrent callers on two replicas (one Postgres)", CLIENTS, "no deadlock/serialization error surfaced");
    counters.add("votes and vote changes in bursts", result.acked.length, "current votes == serial replay of history");
    counters.add("evaluations during bursts", result.evaluations, "all answered");
    counters.add("decisions checked for exactly-one outbox event and JetStream message", decisions, "no loss, no duplicate");
  });

  it("leaves exactly one vote when one user votes many times at once on both replicas", async () => {
    const fixture = await prepareBurst(a.grpc(admin), { intents: 1, required: REQUIRED_APPROVALS_MAX });
    const tok = voterTokens[0]!;
    const req = { project: fixture.project, releaseIntentId: fixture.intentIds[0]!, targetEnvironment: "prod" };
    const acked: AckedVote[] = [];
    const calls = Array.from({ length: 40 }, async (_, i) => {
      const client = (i % 2 === 0 ? a : b).client(PolicyService, tok);
      const decision = i % 3 === 0 ? "rejected" : "approved";
      await (decision === "rejected" ? client.rejectRelease(req) : client.approveRelease(req));
      acked.push({ voter: "voter-0", intentId: req.releaseIntentId, decision });
    });
    await Promise.all(calls);
    const current = await currentVotes(a.grpc(admin), fixture, fixture.intentIds[0]!);
    expect([...current.keys()]).toEqual(["voter-0"]);
    await expectConsistent(fixture, acked);
    counters.add("same-user simultaneous votes (40 on two replicas)", calls.length, "one current vote, history replay-consistent");
  });
});
