import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../src/db/database.js";
import { REQUIRED_APPROVALS_MAX } from "../src/policy/policy.js";
import { waitFor } from "./support/approval-fixtures.js";
import { expectReplayConsistent, lifecycleCounts, outboxCounts, outboxKinds, prepareBurst, runBurst, sumCounts } from "./support/burst.js";
import { createPostgresDatabase } from "./support/database.js";
import { NatsServerProcess, readStream, uniqueSignalNames } from "./support/nats-fixtures.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { token } from "./support/server.js";
import { ServerProcess } from "./support/server-process.js";

// The server process is SIGKILLed in the middle of a burst of votes and
// started again on the same database: every acknowledged vote is there, the
// history still replays to the current votes, and the outbox drains to
// JetStream with each event once.

const CLIENTS = 50;
const OPS = 6;
const counters = new SuiteCounters("fault-sigkill");
const names = uniqueSignalNames();
let nats: NatsServerProcess;
let pgdb: { url: string; drop: () => Promise<void> };
let proc: ServerProcess;

beforeAll(async () => {
  nats = await NatsServerProcess.create();
  await nats.start();
  pgdb = await createPostgresDatabase();
  proc = await ServerProcess.create({
    DATABASE_URL: pgdb.url,
    NATS_URL: nats.url,
    NATS_STREAM: names.stream,
    NATS_SUBJECT_PREFIX: names.prefix,
  });
  await proc.start();
}, 240_000);
afterAll(async () => {
  counters.write();
  await proc?.dispose();
  await nats?.dispose();
  await pgdb?.drop();
});

function transport(tok: string, protocol: "grpc" | "connect" = "grpc") {
  const interceptors = [
    (next: (req: { header: Headers }) => unknown) => (req: { header: Headers }) => {
      req.header.set("authorization", `Bearer ${tok}`);
      return next(req);
    },
  ] as never;
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl: proc.baseUrl, interceptors })
    : createConnectTransport({ baseUrl: proc.baseUrl, httpVersion: "1.1", interceptors });
}

describe("server SIGKILLed mid-burst", () => {
  it("keeps every acknowledged vote and drains the outbox after a restart", { timeout: 120_000 }, async () => {
    const admin = await token({ sub: "ada", orgs: { acme: "admin" } });
    // More approvals required than there are voters: the request stays pending and every vote is taken.
    const fixture = await prepareBurst(transport(admin), { required: REQUIRED_APPROVALS_MAX });
    const tokens = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => token({ sub: `voter-${i}`, orgs: { acme: "member" } })),
    );
    // Half the clients on gRPC (HTTP/2), half on Connect (HTTP/1.1).
    const transports = tokens.map((t, i) => transport(t, i % 2 === 0 ? "grpc" : "connect"));
    let killed = false;
    const result = await runBurst(fixture, CLIENTS, OPS, (i) => transports[i]!, {
      seed: 13,
      onAck: async (n) => {
        if (n !== 80 || killed) return;
        killed = true;
        await proc.kill();
      },
    });
    expect(killed).toBe(true);
    const failed = [...result.errors.values()].reduce((a, b) => a + b, 0);
    expect(failed, "calls after the kill failed").toBeGreaterThan(0);

    await proc.start();
    const check = transport(admin);
    const votes = await expectReplayConsistent(check, fixture, result.acked);
    const lifecycleKinds = await lifecycleCounts(check, fixture);
    const lifecycle = sumCounts(lifecycleKinds);
    expect(votes).toBeGreaterThanOrEqual(result.acked.length);
    expect(Object.fromEntries(lifecycleKinds), "one request opened per intent, still pending").toEqual({
      request_pending: fixture.intentIds.length,
    });
    // Each history row (vote or request transition) has one event.
    const decisions = votes + lifecycle;

    const database = await openDatabase({ databaseUrl: pgdb.url, dataDir: "/nonexistent", poolSize: 2 });
    try {
      await waitFor(
        async () => ((await outboxCounts(database.db, fixture)).pending === 0 ? true : undefined),
        30_000,
        "outbox drained after the restart",
      );
      const outbox = await outboxCounts(database.db, fixture);
      expect(outbox.total, "one outbox event per decision").toBe(decisions);
      expect(Object.fromEntries(await outboxKinds(database.db, fixture)), "outbox events by kind").toEqual({
        "approval.decided": votes,
        "approval.requested": lifecycle,
      });
      const nc = await connect({ servers: nats.url });
      try {
        const events = (await readStream(nc, names.stream)).filter((e) =>
          fixture.intentIds.includes(String(e.event.release_intent_id)),
        );
        expect(events.length, "JetStream messages (no loss, no duplicate)").toBe(decisions);
        expect(new Set(events.map((e) => e.msgId))).toEqual(new Set(outbox.eventIds));
      } finally {
        await nc.close();
      }
    } finally {
      await database.destroy();
    }
    counters.add("server SIGKILLs mid-burst (then restart)", 1, "every acknowledged vote present; outbox drained");
    counters.add("acknowledged votes checked after SIGKILL", result.acked.length, "all in history; replay == current votes");
    counters.add("calls failed by the kill (client side)", failed, "no committed vote lost");
  });
});
