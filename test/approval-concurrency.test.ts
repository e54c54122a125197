import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../src/gen/releasegate/v1/approval_pb.js";
import { createApprovalPolicy, registerIntent } from "./support/approval-fixtures.js";
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
    // Votes at once on one intent race: the losers of the optimistic write were redone under the row lock.
    expect(await conflicts()).toBeGreaterThan(conflictsBefore);
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
    const history = await server.client(ApprovalAuditService, bob).listApprovalHistory({ project, releaseIntentId: id });
    expect(history.entries).toHaveLength(2);
    // Whichever ran second saw the first as its previous decision.
    expect(history.entries[0]?.previousDecision).toBe("");
    expect(history.entries[1]?.previousDecision).toBe(history.entries[0]?.decision);
    expect(final.state?.decisions[0]?.decision).toBe(history.entries[1]?.decision);
  });
});
