import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { type Kysely, sql } from "kysely";
import { expect } from "vitest";
import type { DB } from "../../src/db/schema.js";
import { PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../../src/gen/releasegate/v1/approval_pb.js";
import { ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";

/** A project with one approval gate and a few intents, for bursts of votes. */
export interface BurstFixture {
  readonly project: { organisation: string; project: string };
  readonly environment: string;
  readonly intentIds: readonly string[];
}

export async function prepareBurst(
  transport: Transport,
  options: { intents?: number; required?: number; project?: string } = {},
): Promise<BurstFixture> {
  const project = { organisation: "acme", project: options.project ?? `burst-${randomUUID().slice(0, 8)}` };
  const environment = "prod";
  await createClient(PolicyService, transport).createPolicy({
    project,
    name: "gate",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: environment, requiredApprovals: options.required ?? 3 } },
  });
  const intentIds: string[] = [];
  for (let i = 0; i < (options.intents ?? 3); i++) {
    const id = randomUUID();
    await createClient(ReleaseService, transport).registerReleaseIntent({
      project,
      releaseIntentId: id,
      authorUserId: "release-author",
      branch: "main",
    });
    intentIds.push(id);
  }
  return { project, environment, intentIds };
}

/** One vote the service acknowledged (its response arrived). */
export interface AckedVote {
  readonly voter: string;
  readonly intentId: string;
  readonly decision: "approved" | "rejected";
}

export interface BurstResult {
  readonly acked: AckedVote[];
  readonly evaluations: number;
  /** Error code name → count. */
  readonly errors: Map<string, number>;
}

/**
 * Runs `clients` concurrent callers, each doing `opsPerClient` random votes
 * (approve/reject, so votes change) and evaluations. `transportFor(i)` gives
 * client i its transport (token = voter `voter-i`); `onAck`/`onError` let a
 * fault test inject faults at points of the burst.
 */
export async function runBurst(
  fixture: BurstFixture,
  clients: number,
  opsPerClient: number,
  transportFor: (i: number) => Transport,
  options: {
    onAck?: (n: number) => Promise<void> | void;
    onError?: (code: string, n: number) => Promise<void> | void;
    seed?: number;
  } = {},
): Promise<BurstResult> {
  const acked: AckedVote[] = [];
  const errors = new Map<string, number>();
  let evaluations = 0;
  let seed = options.seed ?? 1;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const one = async (i: number) => {
    const client = createClient(PolicyService, transportFor(i));
    for (let op = 0; op < opsPerClient; op++) {
      const intentId = fixture.intentIds[Math.floor(rand() * fixture.intentIds.length)]!;
      const req = { project: fixture.project, releaseIntentId: intentId, targetEnvironment: fixture.environment };
      const r = rand();
      try {
        if (r < 0.25) {
          await client.evaluatePolicies({ project: fixture.project, targetEnvironment: fixture.environment, releaseIntentId: intentId });
          evaluations++;
        } else {
          const decision = r < 0.75 ? "approved" : "rejected";
          await (decision === "approved" ? client.approveRelease(req) : client.rejectRelease(req));
          acked.push({ voter: `voter-${i}`, intentId, decision });
          await options.onAck?.(acked.length);
        }
      } catch (err) {
        const code = Code[ConnectError.from(err).code] ?? "unknown";
        errors.set(code, (errors.get(code) ?? 0) + 1);
        await options.onError?.(code, [...errors.values()].reduce((x, y) => x + y, 0));
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => one(i)));
  return { acked, evaluations, errors };
}

export interface HistoryRow {
  readonly sequence: bigint;
  readonly userId: string;
  readonly decision: string;
}

/** A request's lifecycle row (decision_kind `request_<state>`, issue 13), not a vote. */
const isRequestRow = (decisionKind: string) => decisionKind.startsWith("request_");

/**
 * Every vote in the history of one intent via ListApprovalHistory, oldest
 * first, all pages; the requests' lifecycle rows are left out (they are no
 * vote, and replaying them as one would be wrong).
 */
export async function readHistory(transport: Transport, fixture: BurstFixture, intentId: string): Promise<HistoryRow[]> {
  const audit = createClient(ApprovalAuditService, transport);
  const rows: HistoryRow[] = [];
  let pageToken = "";
  for (;;) {
    const page = await audit.listApprovalHistory({
      project: fixture.project,
      releaseIntentId: intentId,
      targetEnvironment: fixture.environment,
      pageSize: 1000,
      pageToken,
    });
    rows.push(
      ...page.entries
        .filter((e) => !isRequestRow(e.decisionKind))
        .map((e) => ({ sequence: e.sequence, userId: e.userId, decision: e.decision })),
    );
    if (page.nextPageToken === "") return rows;
    pageToken = page.nextPageToken;
  }
}

/** voter → decision after replaying `history` in order. */
export function replay(history: readonly HistoryRow[]): Map<string, string> {
  const current = new Map<string, string>();
  for (const h of [...history].sort((a, b) => (a.sequence < b.sequence ? -1 : 1))) current.set(h.userId, h.decision);
  return current;
}

/** voter → decision as the service reports the current votes. */
export async function currentVotes(transport: Transport, fixture: BurstFixture, intentId: string): Promise<Map<string, string>> {
  const res = await createClient(PolicyService, transport).getApprovalState({
    project: fixture.project,
    releaseIntentId: intentId,
    targetEnvironment: fixture.environment,
  });
  return new Map((res.state?.decisions ?? []).map((d) => [d.userId, d.decision]));
}

/**
 * Outbox rows of the fixture's intents: all, not yet published, and the
 * votes among them (approval.decided; the rest are the requests' lifecycle
 * events, issue 13).
 */
export async function outboxCounts(
  db: Kysely<DB>,
  fixture: BurstFixture,
): Promise<{ total: number; pending: number; votes: number; eventIds: string[] }> {
  const rows = await db
    .selectFrom("outbox")
    .select(["event_id", "published_at", "payload"])
    .where("release_intent_id", "in", [...fixture.intentIds])
    .execute();
  const kindOf = (payload: unknown) =>
    String(((typeof payload === "string" ? JSON.parse(payload) : payload) as { kind?: unknown }).kind);
  return {
    total: rows.length,
    pending: rows.filter((r) => r.published_at === null).length,
    votes: rows.filter((r) => kindOf(r.payload) === "approval.decided").length,
    eventIds: rows.map((r) => r.event_id),
  };
}

/**
 * For each intent of the fixture: replaying its history (ListApprovalHistory)
 * gives exactly the current votes (GetApprovalState), and every acknowledged
 * vote is in the history at least as often as it was acknowledged (a vote
 * whose answer was lost may be there too). Returns the number of history rows.
 */
export async function expectReplayConsistent(
  transport: Transport,
  fixture: BurstFixture,
  acked: readonly AckedVote[] = [],
): Promise<number> {
  let rows = 0;
  for (const intentId of fixture.intentIds) {
    const history = await readHistory(transport, fixture, intentId);
    rows += history.length;
    expect(Object.fromEntries(await currentVotes(transport, fixture, intentId)), `current votes of ${intentId} vs replay`).toEqual(
      Object.fromEntries(replay(history)),
    );
    const tally = new Map<string, number>();
    for (const h of history) tally.set(`${h.userId}:${h.decision}`, (tally.get(`${h.userId}:${h.decision}`) ?? 0) + 1);
    for (const v of acked.filter((a) => a.intentId === intentId)) {
      const key = `${v.voter}:${v.decision}`;
      const left = tally.get(key) ?? 0;
      expect(left, `acknowledged vote ${key} on ${intentId} is in the history`).toBeGreaterThan(0);
      tally.set(key, left - 1);
    }
  }
  return rows;
}

/**
 * The approval requests' lifecycle rows (decision_kind `request_<state>`) in
 * the history of the fixture's intents, by decision kind; readHistory leaves
 * them out. Each has one outbox event, as each vote does.
 */
export async function lifecycleCounts(transport: Transport, fixture: BurstFixture): Promise<Map<string, number>> {
  const audit = createClient(ApprovalAuditService, transport);
  const counts = new Map<string, number>();
  for (const intentId of fixture.intentIds) {
    let pageToken = "";
    do {
      const page = await audit.listApprovalHistory({
        project: fixture.project,
        releaseIntentId: intentId,
        targetEnvironment: fixture.environment,
        pageSize: 1000,
        pageToken,
      });
      for (const e of page.entries)
        if (isRequestRow(e.decisionKind)) counts.set(e.decisionKind, (counts.get(e.decisionKind) ?? 0) + 1);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }
  return counts;
}

/** The fixture's outbox events by kind (approval.decided, approval.requested, …). */
export async function outboxKinds(db: Kysely<DB>, fixture: BurstFixture): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom("outbox")
    .select(sql<string>`payload->>'kind'`.as("kind"))
    .where("release_intent_id", "in", [...fixture.intentIds])
    .execute();
  return rows.reduce((m, r) => m.set(r.kind, (m.get(r.kind) ?? 0) + 1), new Map<string, number>());
}

/** Sum of a count map. */
export const sumCounts = (counts: ReadonlyMap<string, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);
