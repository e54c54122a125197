import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { ApprovalRequestService } from "../src/gen/releasegate/v1/approval_request_pb.js";
import { createApprovalPolicy, registerIntent } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const project = { organisation: "acme", project: "busy" };
const VOTERS = 50;
let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  await createApprovalPolicy(server, admin, project, "many-approvals", "prod", VOTERS);
});
afterAll(() => server?.stop());

/** Votes whose optimistic write lost so far (releasegate_approval_vote_conflicts_total). */
async function conflicts(): Promise<number> {
  return (await server.app.metrics.voteConflicts.get()).values[0]?.value ?? 0;
}

describe("concurrent votes", () => {
  it("50 different users approving at once end with exactly 50 votes, each response a serial prefix", async () => {
    const id = await registerIntent(server, admin, project);
    const tokens = await Promise.all(
      Array.from({ length: VOTERS }, (_, i) => token({ sub: `user-${i}`, orgs: { acme: "member" } })),
    );
    const conflictsBefore = await conflicts();
    const responses = await Promise.all(
      tokens.map((tok) =>
        server.client(PolicyService, tok).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" }),
      ),
    );
    const final = await server
      .client(PolicyService, admin)
      .getExternalApprovalState({ project, releaseIntentId: id, targetEnvironment: "prod" });
    expect(final.state?.currentApprovals).toBe(VOTERS);
    const order = final.state!.decisions.map((d) => d.userId);
    expect(new Set(order).size).toBe(VOTERS);
    // Serial order: the k-th vote saw exactly the k votes before and including it.
    const counts = responses.map((r) => r.state!.currentApprovals).sort((a, b) => a - b);
    expect(counts).toEqual(Array.from({ length: VOTERS }, (_, i) => i + 1));
    responses.forEach((r, i) => {
      const seen = r.state!.decisions.map((d) => d.userId);
      expect(seen).toEqual(order.slice(0, seen.length));
      expect(seen[seen.length - 1]).toBe(`user-${i}`);
    });
    // Votes at once on one intent race on Postgres (a pool of sessions): the
    // losers of the optimistic write were redone under the row lock. PGlite
    // (one session, the WASM engine on this thread) ran each vote's two
    // statements back to back here, so none lost there.
    if (testDatabaseKind() === "postgres") expect(await conflicts()).toBeGreaterThan(conflictsBefore);
  });

  it("the same user voting twice at once leaves one vote and two history entries", async () => {
    const id = await registerIntent(server, admin, project);
    const bob = await token({ sub: "bob", orgs: { acme: "member" } });
    const client = server.client(PolicyService, bob);
    const vote = { project, releaseIntentId: id, targetEnvironment: "prod" };
    const [a, b] = await Promise.all([client.externalApproveRelease(vote), client.externalRejectRelease(vote)]);
    const final = await client.getExternalApprovalState(vote);
    expect(final.state?.decisions.map((d) => d.userId)).toEqual(["bob"]);
    expect([a.state?.decisions.length, b.state?.decisions.length]).toEqual([1, 1]);
    const listed = await server.client(ApprovalAuditService, bob).listApprovalHistory({ project, releaseIntentId: id });
    // The votes (the request the first one opened has its own row, request_pending).
    const history = { entries: listed.entries.filter((e) => !e.decisionKind.startsWith("request_")) };
    expect(history.entries).toHaveLength(2);
    // Whichever ran second saw the first as its previous decision.
    expect(history.entries[0]?.previousDecision).toBe("");
    expect(history.entries[1]?.previousDecision).toBe(history.entries[0]?.decision);
    expect(final.state?.decisions[0]?.decision).toBe(history.entries[1]?.decision);
  });

  it("a vote whose basis went stale while it waited is decided again on the fresh votes (the locked path)", async () => {
    // A second session holds the intent row while the vote reads its basis and tries to write.
    await withLockScene(async ({ server: pgServer, raw, id, voteWaitsOnLock }) => {
      const bob = await token({ sub: "bob", orgs: { acme: "member" } });
      // The request is open already, so the vote takes the optimistic path (a first vote would open it under the lock).
      await pgServer
        .client(ApprovalRequestService, bob)
        .requestApproval({ project, releaseIntentId: id, targetEnvironment: "prod" });
      const before = (await pgServer.app.metrics.voteConflicts.get()).values[0]?.value ?? 0;
      await raw.query("begin");
      await raw.query("select 1 from release_intents where id = $1 for no key update", [id]);

      const voting = pgServer
        .client(PolicyService, bob)
        .externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
      // The vote read its basis (no votes) and its write now waits for the row.
      await voteWaitsOnLock();
      // Meanwhile another vote commits, as a vote does: its row and a version bump.
      await raw.query(
        `insert into approval_votes (release_intent_id, environment, user_id, username, decision, decision_kind, first_cast_at, decided_at, request_id)
         values ($1, 'prod', 'zoe', 'Zoe', 'approved', 'peer', now(), now(),
                 (select id from approval_requests where release_intent_id = $1 and state = 'pending'))`,
        [id],
      );
      await raw.query("update release_intents set vote_version = vote_version + 1 where id = $1", [id]);
      await raw.query("commit");

      const res = await voting;
      expect(res.state?.decisions.map((d) => d.userId)).toEqual(["zoe", "bob"]);
      expect(res.state?.currentApprovals).toBe(2);
      expect((await pgServer.app.metrics.voteConflicts.get()).values[0]?.value).toBe(before + 1);
      const { rows } = await raw.query(
        "select count(*)::int as n from approval_history where release_intent_id = $1 and decision_kind not like 'request_%'",
        [id],
      );
      expect(rows[0]?.n).toBe(1);
    });
  });
});

describe("a deadlock inside a vote", () => {
  it("is retried inside the service: the caller gets its answer, one history entry, no error", async () => {
    await withLockScene(async ({ server: pgServer, raw, id, voteWaitsOnLock }) => {
      const bob = await token({ sub: "bob", orgs: { acme: "member" } });
      const vote = { project, releaseIntentId: id, targetEnvironment: "prod" };
      await pgServer.client(PolicyService, bob).externalApproveRelease(vote);

      // Another session holds bob's vote row and (later) wants the intent row the vote's write
      // holds: a lock cycle. Its own deadlock check waits 10 s, so the vote's backend (1 s) is
      // the one Postgres aborts with 40P01.
      await raw.query("begin");
      await raw.query("set local deadlock_timeout = '10s'");
      await raw.query("select 1 from approval_votes where release_intent_id = $1 and user_id = 'bob' for update", [id]);
      const changing = pgServer.client(PolicyService, bob).externalRejectRelease(vote);
      await voteWaitsOnLock();
      await raw.query("select 1 from release_intents where id = $1 for update", [id]);
      await raw.query("commit");

      const res = await changing;
      expect(res.state?.decisions.map((d) => [d.userId, d.decision])).toEqual([["bob", "rejected"]]);
      const { rows } = await raw.query(
        "select decision, previous_decision from approval_history where release_intent_id = $1 and decision_kind not like 'request_%' order by seq",
        [id],
      );
      expect(rows).toEqual([
        { decision: "approved", previous_decision: null },
        { decision: "rejected", previous_decision: "approved" },
      ]);
    });
  });
});

interface LockScene {
  /** A server of its own on Postgres, with a 2-approval policy on prod. */
  readonly server: TestServer;
  /** A raw session to hold locks with. */
  readonly raw: pg.Client;
  /** A registered intent in `project`. */
  readonly id: string;
  /** Resolves once a vote's write (the statement that bumps vote_version) waits on a row lock. */
  voteWaitsOnLock(): Promise<void>;
}

/** Runs `scene` against a fresh Postgres server and sessions, then tears all down. */
async function withLockScene(scene: (s: LockScene) => Promise<void>): Promise<void> {
  const pgServer = await startTestServer({ kind: "postgres" });
  const raw = new pg.Client({ connectionString: pgServer.db.url });
  // pg_stat_activity is read once per transaction: watch from a session of its own.
  const observer = new pg.Client({ connectionString: pgServer.db.url });
  await raw.connect();
  await observer.connect();
  try {
    await createApprovalPolicy(pgServer, admin, project, "two", "prod", 2);
    const id = await registerIntent(pgServer, admin, project);
    const voteWaitsOnLock = () =>
      waitUntil(async () => {
        const { rows } = await observer.query(
          "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%vote_version%'",
        );
        return rows.length === 1;
      });
    await scene({ server: pgServer, raw, id, voteWaitsOnLock });
  } finally {
    await raw.query("rollback").catch(() => undefined);
    await raw.end();
    await observer.end();
    await pgServer.stop();
  }
}

/** Polls `check` every 20 ms until it holds (10 s at most). */
async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in 10 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
