import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService, type ApprovalEvent } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalRequestState } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { type Cast, cast, createApprovalPolicy, expectCode, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { createPostgresDatabase, createTestDatabase } from "./support/database.js";
import { openThroughProxy } from "./support/pg-proxy.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "web" };
let server: TestServer;
let t: Cast;

beforeAll(async () => {
  // No NATS_URL: the Watch stream must work without NATS.
  server = await startTestServer();
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "two-approvals", "prod", 2);
  await createApprovalPolicy(server, t.ada, project, "one-approval", "staging", 1);
});
afterAll(() => server?.stop());

/** Opens a Watch stream and collects its events until the returned stop() is called. */
async function watch(tok: string, targetEnvironment = "", protocol: "grpc" | "connect" = "grpc", resumeAfterEventId = "") {
  const controller = new AbortController();
  const events: ApprovalEvent[] = [];
  const transport = protocol === "grpc" ? server.grpc(tok) : server.connect(tok);
  const stream = createClient(ApprovalAuditService, transport)
    .watchApprovalEvents({ project, targetEnvironment, resumeAfterEventId }, { signal: controller.signal });
  const iterator = stream[Symbol.asyncIterator]();
  const first = await iterator.next();
  expect(first.value).toMatchObject({ subscribed: true });
  const done = (async () => {
    try {
      for (let r = await iterator.next(); !r.done; r = await iterator.next())
        if (r.value.event !== undefined) events.push(r.value.event);
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
  })();
  return {
    events,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

/** The event a vote commits (besides the approval request's lifecycle events, approval.requested / approval.approved / ...). */
const DECIDED = "approval.decided";
const isVote = (e: ApprovalEvent) => e.kind === DECIDED;
/** `kind:voter:decision:environment` of each event. */
const described = (events: ApprovalEvent[]) =>
  events.map((e) => `${e.kind}:${e.voterUserId}:${e.decision}:${e.targetEnvironment}`);

describe("WatchApprovalEvents", () => {
  it("streams the decisions of the project and environment asked for, as they commit", async () => {
    const prod = await watch(t.pipeline, "prod");
    const all = await watch(t.alice);
    const id = await registerIntent(server, t.pipeline, project);
    const other = { organisation: "acme", project: "elsewhere" };
    await createApprovalPolicy(server, t.ada, other, "gate", "prod", 1);
    const otherId = await registerIntent(server, t.pipeline, other);

    await server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    await server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "staging" });
    await server
      .client(PolicyService, t.bob)
      .externalApproveRelease({ project: other, releaseIntentId: otherId, targetEnvironment: "prod" });
    await server.client(PolicyService, t.carol).externalRejectRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });

    await waitFor(() => (prod.events.length >= 3 && all.events.length >= 6 ? true : undefined), 10_000, "events");
    await prod.stop();
    await all.stop();
    // bob's first vote opens prod's approval request (2 approvals needed: it stays pending).
    expect(described(prod.events)).toEqual([
      "approval.requested:bob:pending:prod",
      "approval.decided:bob:approved:prod",
      "approval.decided:carol:rejected:prod",
    ]);
    expect(prod.events[2]).toMatchObject({
      kind: "approval.decided",
      project,
      releaseIntentId: id,
      decisionKind: "peer",
      currentApprovals: 1,
      requiredApprovals: 2,
      passed: false,
    });
    // staging needs one approval: bob's vote opens its request and approves it in one transaction.
    expect(described(all.events)).toEqual([
      "approval.requested:bob:pending:prod",
      "approval.decided:bob:approved:prod",
      "approval.requested:bob:pending:staging",
      "approval.decided:bob:approved:staging",
      "approval.approved:bob:approved:staging",
      "approval.decided:carol:rejected:prod",
    ]);
    expect(all.events.filter(isVote)[1]).toMatchObject({ passed: true, currentApprovals: 1, requiredApprovals: 1 });
    expect(all.events[4]).toMatchObject({ requestState: ApprovalRequestState.APPROVED, passed: true, releaseIntentId: id });
  });

  it("streams over the Connect protocol on HTTP/1.1 too", async () => {
    const watcher = await watch(t.bob, "prod", "connect");
    const id = await registerIntent(server, t.pipeline, project);
    await server.client(PolicyService, t.carol).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    const event = await waitFor(
      () => watcher.events.find((e) => e.releaseIntentId === id && isVote(e)),
      10_000,
      "event over Connect",
    );
    await watcher.stop();
    expect(event).toMatchObject({ voterUserId: "carol", decision: "approved", targetEnvironment: "prod" });
  });

  it("delivers an event too large for a NOTIFY payload (a 10 000-character username from the token)", async () => {
    const watcher = await watch(t.alice, "prod");
    const id = await registerIntent(server, t.pipeline, project);
    const longName = "n".repeat(10_000);
    const voter = await token({ sub: "verbose", name: longName, orgs: { acme: "member" } });
    const res = await server
      .client(PolicyService, voter)
      .externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    expect(res.state?.decisions[0]?.username).toBe(longName);
    await waitFor(() => watcher.events.find((e) => e.releaseIntentId === id && isVote(e)), 10_000, "the large event");
    await watcher.stop();
    expect(watcher.events.find((e) => e.releaseIntentId === id && isVote(e))?.voterUsername).toBe(longName);
  });

  it("is denied to callers outside the organisation and validates its filter", async () => {
    const denied = server.client(ApprovalAuditService, t.mallory).watchApprovalEvents({ project });
    await expectCode(denied[Symbol.asyncIterator]().next(), Code.PermissionDenied, /no role in organisation acme/);
    const invalid = server.client(ApprovalAuditService, t.bob).watchApprovalEvents({ project: { organisation: "acme", project: "" } });
    await expectCode(invalid[Symbol.asyncIterator]().next(), Code.InvalidArgument, "project.project: is required");
  });
});

describe("resuming after a reconnect (resume_after_event_id)", () => {
  const approve = (tok: string, releaseIntentId: string, targetEnvironment = "prod") =>
    server.client(PolicyService, tok).externalApproveRelease({ project, releaseIntentId, targetEnvironment });
  const of = (events: ApprovalEvent[], id: string) => described(events.filter((e) => e.releaseIntentId === id));

  it("replays what was committed while the client was away, then goes on live, each event once", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const first = await watch(t.pipeline, "prod");
    await approve(t.bob, id);
    const seen = await waitFor(() => first.events.find((e) => e.releaseIntentId === id && isVote(e)), 10_000, "bob's vote");
    await first.stop();
    expect(of(first.events, id)).toEqual(["approval.requested:bob:pending:prod", "approval.decided:bob:approved:prod"]);

    // Away: two more votes on prod (bob changes his to a rejection: 1 of 2, the request stays pending),
    // one on staging (filtered out on resume, with its request's approval.requested and approval.approved).
    await server.client(PolicyService, t.bob).externalRejectRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    await approve(t.carol, id);
    await approve(t.carol, id, "staging");

    const resumed = await watch(t.pipeline, "prod", "grpc", seen.eventId);
    // The replay is at least once (docs/api.md: dedupe by event_id): it may repeat what the first
    // stream had, e.g. the approval.requested that bob's vote committed with the resume point.
    const had = new Set(first.events.map((e) => e.eventId));
    const fresh = () => resumed.events.filter((e) => !had.has(e.eventId));
    await waitFor(() => (of(fresh(), id).length >= 2 ? true : undefined), 10_000, "the replay");
    // ada's is the second approval: prod's request is approved in the same transaction.
    await approve(t.ada, id);
    await waitFor(() => (of(fresh(), id).length >= 4 ? true : undefined), 10_000, "live events after the replay");
    await resumed.stop();
    expect(of(fresh(), id)).toEqual([
      "approval.decided:bob:rejected:prod",
      "approval.decided:carol:approved:prod",
      "approval.decided:ada:approved:prod",
      "approval.approved:ada:approved:prod",
    ]);
    // Each event once, and not the resume point itself.
    const ids = resumed.events.map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).not.toContain(seen.eventId);
  });

  it("answers OUT_OF_RANGE for an event it does not keep for this project, INVALID_ARGUMENT for a malformed id", async () => {
    const id = await registerIntent(server, t.pipeline, project);
    const other = { organisation: "acme", project: "resume-elsewhere" };
    await createApprovalPolicy(server, t.ada, other, "gate", "prod", 1);
    const otherId = await registerIntent(server, t.pipeline, other);
    const watcher = await watch(t.ada, "", "grpc");
    await server.client(PolicyService, t.bob).externalApproveRelease({ project: other, releaseIntentId: otherId, targetEnvironment: "prod" });
    await approve(t.bob, id);
    const mine = await waitFor(() => watcher.events.find((e) => e.releaseIntentId === id && isVote(e)), 10_000, "the vote");
    await watcher.stop();
    const open = (resumeAfterEventId: string, p = project) =>
      server.client(ApprovalAuditService, t.bob).watchApprovalEvents({ project: p, resumeAfterEventId })[Symbol.asyncIterator]().next();

    // Unknown (never written, or pruned after 7 days).
    await expectCode(open("00000000-0000-4000-8000-000000000000"), Code.OutOfRange, /^resume_after_event_id: .*ListApprovalHistory/);
    // Another project's event does not resume this project's stream (nor tell it exists).
    await expectCode(open(mine.eventId, other), Code.OutOfRange, /^resume_after_event_id: /);
    await expectCode(open("not-a-uuid"), Code.InvalidArgument, /^resume_after_event_id: /);
    // This project's own event does.
    const ok = await open(mine.eventId);
    expect(ok.value).toMatchObject({ subscribed: true });
  });
});

describe("an interrupted event feed", () => {
  it("ends open streams with UNAVAILABLE when its LISTEN session is replaced, and a resumed stream replays what it missed", async () => {
    const pgdb = await createPostgresDatabase();
    // The LISTEN liveness check every 200 ms instead of 30 s.
    const { proxy, database: proxied, close } = await openThroughProxy(pgdb.url, { listenCheckMs: 200 });
    const gapped = await startTestServer({ shared: { database: proxied, url: pgdb.url, dispose: async () => {} } });
    try {
      await createApprovalPolicy(gapped, t.ada, project, "gate", "prod", 2);
      const id = await registerIntent(gapped, t.ada, project);
      const vote = (tok: string) =>
        gapped.client(PolicyService, tok).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
      const watchFrom = (resumeAfterEventId = "") =>
        gapped
          .client(ApprovalAuditService, t.pipeline)
          .watchApprovalEvents({ project, targetEnvironment: "prod", resumeAfterEventId })
          [Symbol.asyncIterator]();

      const stream = watchFrom();
      expect((await stream.next()).value).toMatchObject({ subscribed: true });
      await vote(t.bob);
      // bob's first vote opens the request (approval.requested), then his vote (1 of 2).
      const requested = (await stream.next()).value?.event;
      expect(requested).toMatchObject({ kind: "approval.requested", voterUserId: "bob" });
      const bobs = (await stream.next()).value?.event;
      expect(bobs).toMatchObject({ kind: DECIDED, voterUserId: "bob", currentApprovals: 1 });

      // The server's LISTEN session goes silent: what commits now is never notified to it.
      expect(proxy.freezeWhere(/LISTEN releasegate_outbox/)).toBe(1);
      await vote(t.carol);
      await expectCode(stream.next(), Code.Unavailable, /interrupted.*resume_after_event_id/);

      const resumed = watchFrom(bobs?.eventId);
      expect((await resumed.next()).value).toMatchObject({ subscribed: true });
      // The replay is at least once (dedupe by event_id): bob's approval.requested, committed with
      // the resume point, comes again; then carol's vote and the approval it made, both missed.
      const replayed: Array<ApprovalEvent | undefined> = [];
      for (let i = 0; i < 3; i++) replayed.push((await resumed.next()).value?.event);
      expect(replayed).toMatchObject([
        { kind: "approval.requested", voterUserId: "bob", eventId: requested?.eventId },
        { kind: DECIDED, voterUserId: "carol", currentApprovals: 2, passed: true },
        { kind: "approval.approved", voterUserId: "carol", releaseIntentId: id },
      ]);
      await resumed.return?.();
      // Operators see both on /metrics.
      const metrics = await (await fetch(`http://127.0.0.1:${gapped.app.adminPort}/metrics`)).text();
      expect(metrics).toMatch(/^releasegate_watch_feed_interruptions_total 1$/m);
      expect(metrics).toMatch(/^releasegate_watch_replayed_events_total 3$/m);
    } finally {
      await gapped.stop();
      await close();
      await pgdb.drop();
    }
  });
});

describe("keep-alive and limits", () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({ env: { WATCH_HEARTBEAT_MS: "150", MAX_WATCH_STREAMS: "2" } });
  });
  afterAll(() => limited?.stop());

  const open = (controller: AbortController) => {
    const stream = limited
      .client(ApprovalAuditService, t.alice)
      .watchApprovalEvents({ project }, { signal: controller.signal })
      [Symbol.asyncIterator]();
    return stream;
  };

  it("sends a heartbeat (no event) on a quiet stream every WATCH_HEARTBEAT_MS", async () => {
    const controller = new AbortController();
    const stream = open(controller);
    expect((await stream.next()).value).toMatchObject({ subscribed: true });
    const started = Date.now();
    const first = (await stream.next()).value;
    const second = (await stream.next()).value;
    controller.abort();
    expect([first, second].map((m) => [m?.heartbeat, m?.subscribed, m?.event])).toEqual([
      [true, false, undefined],
      [true, false, undefined],
    ]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * 150 - 20);
  });

  it("refuses a stream beyond MAX_WATCH_STREAMS with RESOURCE_EXHAUSTED, and takes one again once another closed", async () => {
    const controllers = [new AbortController(), new AbortController()];
    const streams = controllers.map(open);
    for (const s of streams) expect((await s.next()).value).toMatchObject({ subscribed: true });
    const third = new AbortController();
    await expectCode(open(third).next(), Code.ResourceExhausted, /MAX_WATCH_STREAMS=2/);

    controllers[0]?.abort();
    await waitFor(
      async () => {
        const retry = new AbortController();
        const first = await open(retry)
          .next()
          .catch(() => undefined);
        retry.abort();
        return first?.value?.subscribed === true ? true : undefined;
      },
      10_000,
      "a slot after a stream closed",
    );
    controllers[1]?.abort();
  });
});

describe("shutdown", () => {
  it("ends open Watch streams when the server stops, without waiting out the grace period", async () => {
    const other = await startTestServer();
    const stream = other
      .client(ApprovalAuditService, t.alice)
      .watchApprovalEvents({ project })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value).toMatchObject({ subscribed: true });
    const started = Date.now();
    const ended = stream.next().then(
      (r) => (r.done ? "done" : "message"),
      () => "error",
    );
    await other.app.stop(10_000);
    expect(await ended).toBe("done");
    expect(Date.now() - started).toBeLessThan(5_000);
    await other.db.dispose();
  });
});

describe("without NATS_URL", () => {
  it("keeps events in the outbox and logs once that signals are off", async () => {
    const lines: Array<{ msg: string }> = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const line of String(chunk).split("\n")) if (line !== "") lines.push(JSON.parse(line) as { msg: string });
        cb();
      },
    });
    const dataDir = mkdtempSync(join(tmpdir(), "rg-nonats-"));
    const db = await createTestDatabase();
    const config = loadConfig({ HOST: "127.0.0.1", PORT: "0", DATA_DIR: dataDir, RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET });
    const app = new App({ config, logger: pino({ level: "info" }, sink), database: db.database });
    await app.start();
    try {
      const local: Pick<TestServer, "client"> = {
        client: (service, tok) =>
          createClient(
            service,
            createGrpcTransport({
              baseUrl: `http://127.0.0.1:${app.port}`,
              interceptors: [
                (next) => (req) => {
                  req.header.set("authorization", `Bearer ${tok}`);
                  return next(req);
                },
              ],
            }),
          ),
      };
      // Two approvals needed, so carol's vote still finds the request pending (a vote after a pass is refused).
      await createApprovalPolicy(local, t.ada, project, "gate", "prod", 2);
      const id = await registerIntent(local, t.ada, project);
      const vote = { project, releaseIntentId: id, targetEnvironment: "prod" };
      await local.client(PolicyService, t.bob).externalApproveRelease(vote);
      await local.client(PolicyService, t.carol).externalApproveRelease(vote);
      // approval.requested (bob's first vote opened the request), the two votes, approval.approved.
      const kept = await db.database.db.selectFrom("outbox").select(["payload", "published_at"]).orderBy("seq").execute();
      expect(kept.map((r) => [r.payload.kind, r.payload.voter_user_id, r.published_at])).toEqual([
        ["approval.requested", "bob", null],
        ["approval.decided", "bob", null],
        ["approval.decided", "carol", null],
        ["approval.approved", "carol", null],
      ]);
      expect(await app.relay.outboxDepth()).toBe(4);
    } finally {
      await app.stop(1_000);
      await db.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    }
    expect(lines.filter((l) => /signals are off/.test(l.msg))).toHaveLength(1);
  });
});
