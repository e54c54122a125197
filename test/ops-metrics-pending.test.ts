import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { PENDING_SCAN_PER_GATE } from "../src/metrics-queries.js";
import { type Cast, cast, createApprovalPolicy, registerIntent } from "./support/approval-fixtures.js";
import { startTestServer, type TestServer } from "./support/server.js";

// releasegate_approvals_pending looks at each gated environment's most recent
// intents only, so a scrape costs the same at 1M intents as at 10.

const project = { organisation: "acme", project: "pending" };
let server: TestServer;
let t: Cast;

beforeAll(async () => {
  server = await startTestServer();
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "one-approval", "prod", 1);
});
afterAll(() => server?.stop());

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Intents of the project registered `hoursAgo` hours ago, written straight into the table (a backlog). */
async function backlog(count: number, hoursAgo: number): Promise<void> {
  const created = new Date(Date.now() - hoursAgo * 3_600_000);
  await server.app.database.db
    .insertInto("release_intents")
    .values(
      Array.from({ length: count }, () => ({
        id: randomUUID(),
        organisation: project.organisation,
        project: project.project,
        author_user_id: "alice",
        author_username: "alice",
        branch: "main",
        version: "1.0.0",
        created_at: created,
        registered_by_user_id: "alice",
        registered_by_actor_type: "user",
      })),
    )
    .execute();
}

describe("releasegate_approvals_pending over the admin port", () => {
  it("counts waiting releases among each gate's most recent intents, and drops one once approved", async () => {
    const id = await registerIntent(server, t.ada, project);
    let text = await scrape();
    expect(sample(text, "releasegate_approvals_pending")).toBe(1);
    expect(sample(text, 'releasegate_approvals_pending_age_seconds_bucket{le="60"}')).toBe(1);

    await server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: id, targetEnvironment: "prod" });
    text = await scrape();
    expect(sample(text, "releasegate_approvals_pending")).toBe(0);
    // A histogram with no observation since its reset shows no samples.
    expect(sample(text, "releasegate_approvals_pending_age_seconds_count") ?? 0).toBe(0);
  });

  it("looks at no more than PENDING_SCAN_PER_GATE intents per gate: older waiting ones behind them are not counted", async () => {
    // Two days old, then a day old: the newer ones fill the window.
    await backlog(20, 48);
    await backlog(PENDING_SCAN_PER_GATE, 24);
    const text = await scrape();
    // The approved intent of the first test is among the newest and not waiting.
    expect(sample(text, "releasegate_approvals_pending")).toBe(PENDING_SCAN_PER_GATE - 1);
    expect(sample(text, "releasegate_approvals_pending_age_seconds_count")).toBe(PENDING_SCAN_PER_GATE - 1);
    // All a day old (none of the two-day-old ones).
    expect(sample(text, `releasegate_approvals_pending_age_seconds_bucket{le="${12 * 3_600}"}`)).toBe(0);
    expect(sample(text, `releasegate_approvals_pending_age_seconds_bucket{le="${86_400 * 3}"}`)).toBe(PENDING_SCAN_PER_GATE - 1);
  });
});
