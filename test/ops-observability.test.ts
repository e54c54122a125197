import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { createLogger } from "../src/logger.js";
import { waitFor } from "./support/grpc-js.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const lines: Record<string, unknown>[] = [];
const logger = createLogger("info", "json", {
  write(line: string) {
    lines.push(JSON.parse(line) as Record<string, unknown>);
  },
});
const project = { organisation: "acme", project: "obs" };
const intentId = randomUUID();
let server: TestServer;
let admin: string;
let reviewer: string;

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}
/** The value of one sample line, e.g. `name{a="b"}`; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The kinds of the events waiting in the outbox, oldest first. */
async function unpublishedKinds(): Promise<unknown[]> {
  const rows = await server.app.database.db
    .selectFrom("outbox")
    .select("payload")
    .where("published_at", "is", null)
    .orderBy("seq")
    .execute();
  return rows.map((r) => r.payload.kind);
}

beforeAll(async () => {
  server = await startTestServer({ logger });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  reviewer = await token({ sub: "bob", orgs: { acme: "member" } });
  const policies = server.client(PolicyService, admin);
  await policies.createPolicy({
    project,
    name: "two-eyes",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
  });
  await server
    .client(ReleaseService, admin)
    .registerReleaseIntent({ project, releaseIntentId: intentId, branch: "main", version: "1.0.0" });
});
afterAll(() => server?.stop());

describe("metrics on the admin port", () => {
  it("counts RPCs per method and code, with a latency histogram", async () => {
    const err = await server
      .client(PolicyService, admin)
      .deletePolicy({ project, name: "no-such-policy" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    const text = await scrape();
    const create = 'service="forest.v1.PolicyService",method="CreatePolicy",code="OK"';
    expect(sample(text, `releasegate_rpc_requests_total{${create}}`)).toBe(1);
    expect(sample(text, `releasegate_rpc_duration_seconds_count{${create}}`)).toBe(1);
    expect(
      sample(text, 'releasegate_rpc_requests_total{service="forest.v1.PolicyService",method="DeletePolicy",code="NOT_FOUND"}'),
    ).toBe(1);
    expect(text).toContain("# TYPE releasegate_rpc_duration_seconds histogram");
  });

  it("counts policy decisions, pending approvals, approval votes and the outbox backlog", async () => {
    const evaluate = () =>
      server.client(PolicyService, admin).evaluatePolicies({ project, targetEnvironment: "prod", releaseIntentId: intentId });
    expect((await evaluate()).allPassed).toBe(false);
    let text = await scrape();
    expect(sample(text, 'releasegate_policy_evaluations_total{policy_type="external_approval",decision="blocked"}')).toBe(1);
    expect(sample(text, "releasegate_approvals_pending")).toBe(1);
    expect(sample(text, "releasegate_approvals_pending_age_seconds_count")).toBe(1);
    expect(sample(text, 'releasegate_approvals_pending_age_seconds_bucket{le="+Inf"}')).toBe(1);
    // The evaluation found the approval policy unsatisfied and opened an approval request; no NATS_URL
    // in this server, so its event waits in the outbox.
    expect(await unpublishedKinds()).toEqual(["approval.requested"]);
    expect(sample(text, "releasegate_outbox_depth")).toBe(1);

    await server
      .client(PolicyService, reviewer)
      .externalApproveRelease({ project, releaseIntentId: intentId, targetEnvironment: "prod" });
    expect((await evaluate()).allPassed).toBe(true);
    text = await scrape();
    expect(sample(text, 'releasegate_approval_decisions_total{kind="peer",decision="approved"}')).toBe(1);
    expect(sample(text, 'releasegate_policy_evaluations_total{policy_type="external_approval",decision="passed"}')).toBe(1);
    expect(sample(text, "releasegate_approvals_pending")).toBe(0);
    // The vote's event and the approval of the request (the one required approval) join it.
    expect(await unpublishedKinds()).toEqual(["approval.requested", "approval.decided", "approval.approved"]);
    expect(sample(text, "releasegate_outbox_depth")).toBe(3);
    expect(sample(text, "releasegate_outbox_oldest_unpublished_age_seconds")).toBeGreaterThanOrEqual(0);
    expect(sample(text, "releasegate_outbox_relay_publish_errors_total")).toBe(0);
    // One vote, nobody voting at the same time: its optimistic write held.
    expect(sample(text, "releasegate_approval_vote_conflicts_total")).toBe(0);
    expect(sample(text, 'releasegate_db_pool_connections{state="in_use"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, "releasegate_process_resident_memory_bytes")).toBeGreaterThan(0);
  });
});

describe("one JSON log line per RPC", () => {
  it("logs method, code, duration, actor, organisation/project and the caller's request id, and echoes it", async () => {
    const requestId = `req-${randomUUID()}`;
    let echoed: string | null = null;
    await server.client(PolicyService, admin).listPolicies(
      { project },
      {
        headers: { "x-request-id": requestId },
        onHeader: (h) => {
          echoed = h.get("x-request-id");
        },
      },
    );
    expect(echoed).toBe(requestId);
    const line = lines.find((l) => l.requestId === requestId);
    expect(line).toMatchObject({
      level: 30,
      msg: "rpc",
      service: "forest.v1.PolicyService",
      method: "ListPolicies",
      code: "OK",
      actor: "ada",
      organisation: "acme",
      project: "obs",
    });
    expect(typeof line?.durationMs).toBe("number");
  });

  it("generates a request id when none is sent and returns it in error metadata", async () => {
    const err = await server
      .client(PolicyService, admin)
      .listPolicies({ project: { organisation: "", project: "" } })
      .catch((e: unknown) => ConnectError.from(e));
    const requestId = (err as ConnectError).metadata.get("x-request-id");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect(lines.find((l) => l.requestId === requestId)).toMatchObject({ method: "ListPolicies", code: "INVALID_ARGUMENT" });
  });

  it("never logs the token or a vote's comment", async () => {
    const secretComment = `comment-${randomUUID()}`;
    // An intent of its own: the shared one's request is approved (final) once the metrics test voted,
    // and a vote on it would be refused before its comment is stored.
    const fresh = randomUUID();
    await server
      .client(ReleaseService, admin)
      .registerReleaseIntent({ project, releaseIntentId: fresh, branch: "main", version: "1.0.1" });
    const rejected = await server
      .client(PolicyService, reviewer)
      .externalRejectRelease({ project, releaseIntentId: fresh, targetEnvironment: "prod", comment: secretComment });
    expect(rejected.state?.decisions).toMatchObject([{ userId: "bob", decision: "rejected", comment: secretComment }]);
    const all = JSON.stringify(lines);
    expect(all).not.toContain(secretComment);
    expect(all).not.toContain(admin);
    expect(all).not.toContain(reviewer);
    expect(lines.some((l) => l.method === "ExternalRejectRelease" && l.code === "OK")).toBe(true);
  });
});

describe("log format", () => {
  it("LOG_FORMAT=pretty writes human-readable lines, still without secrets", async () => {
    let out = "";
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out += chunk.toString();
        done();
      },
    });
    const pretty = createLogger("info", "pretty", sink);
    pretty.info({ requestId: "req-1", method: "ListPolicies", token: "secret-token", comment: "private" }, "rpc");
    await waitFor(() => out.includes("rpc"), 5_000, "the pretty line");
    expect(out).toMatch(/INFO.*rpc/);
    expect(out).toContain('requestId: "req-1"');
    expect(() => JSON.parse(out)).toThrow();
    expect(out).not.toContain("secret-token");
    expect(out).not.toContain("private");
  });
});

