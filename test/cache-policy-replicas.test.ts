import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Two replicas on one database: each caches compiled policies per project and
// must drop them when the other (or any SQL writer) changes a policy.
const project = { organisation: "acme", project: "cache" };
const WAIT_MS = 3_000;
let a: TestServer;
let b: TestServer;
let admin: string;

beforeAll(async () => {
  a = await startTestServer();
  b = await startTestServer({ shared: a.db });
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(async () => {
  await b?.stop();
  await a?.stop();
});

function evaluateMain(server: TestServer) {
  return server.client(PolicyService, admin).evaluatePolicies({ project, targetEnvironment: "prod", branch: "main" });
}

/** Polls replica B until `accept` holds for its answer; fails after WAIT_MS. */
async function eventuallyOnB(accept: (r: Awaited<ReturnType<typeof evaluateMain>>) => boolean) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const r = await evaluateMain(b);
    if (accept(r)) return { answer: r, waitedMs: WAIT_MS - (deadline - Date.now()) };
    if (Date.now() > deadline) throw new Error(`replica B still answers ${JSON.stringify(r.evaluations)}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const branchPolicy = (pattern: string) =>
  ({ case: "branchRestriction", value: { targetEnvironment: "prod", branchPattern: pattern } }) as const;

describe("compiled-policy cache across replicas", () => {
  it("replica B sees a policy created on replica A", async () => {
    expect((await evaluateMain(b)).evaluations).toEqual([]); // warms B's cache with "no policies"
    await a.client(PolicyService, admin).createPolicy({
      project,
      name: "main-only",
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: branchPolicy("^main$"),
    });
    const { answer } = await eventuallyOnB((r) => r.evaluations.length === 1);
    expect(answer.allPassed).toBe(true);
    expect(answer.evaluations[0]?.reason).toBe("branch main matches ^main$");
  });

  it("replica A sees its own update on the very next evaluation", async () => {
    expect((await evaluateMain(a)).allPassed).toBe(true);
    await a.client(PolicyService, admin).updatePolicy({ project, name: "main-only", config: branchPolicy("^release/") });
    const r = await evaluateMain(a);
    expect(r.allPassed).toBe(false);
    expect(r.evaluations[0]?.reason).toBe("branch main does not match required pattern ^release/");
  });

  it("replica B sees an update made on replica A", async () => {
    // B may still hold "^release/" or the older "^main$"; move to a third pattern.
    await evaluateMain(b);
    await a.client(PolicyService, admin).updatePolicy({ project, name: "main-only", config: branchPolicy("^ma") });
    const { answer } = await eventuallyOnB((r) => r.evaluations[0]?.reason === "branch main matches ^ma");
    expect(answer.allPassed).toBe(true);
  });

  it("replica B sees a policy disabled on replica A", async () => {
    await a.client(PolicyService, admin).createPolicy({
      project,
      name: "never",
      policyType: PolicyType.BRANCH_RESTRICTION,
      config: branchPolicy("^never$"),
    });
    await eventuallyOnB((r) => r.evaluations.length === 2 && !r.allPassed);
    await a.client(PolicyService, admin).updatePolicy({ project, name: "never", enabled: false });
    const { answer } = await eventuallyOnB((r) => r.evaluations.length === 1);
    expect(answer.allPassed).toBe(true);
  });

  it("replica B sees a policy deleted on replica A", async () => {
    await a.client(PolicyService, admin).deletePolicy({ project, name: "main-only" });
    const { answer } = await eventuallyOnB((r) => r.evaluations.length === 0);
    expect(answer.allPassed).toBe(true);
  });

  it("both replicas see a change written by plain SQL (the trigger notifies)", async () => {
    await evaluateMain(a);
    await evaluateMain(b);
    await sql`update policies set enabled = true where organisation = 'acme' and project = 'cache' and name = 'never'`.execute(
      a.db.database.db,
    );
    const { answer } = await eventuallyOnB((r) => r.evaluations.length === 1);
    expect(answer.allPassed).toBe(false);
    expect(answer.evaluations[0]?.reason).toBe("branch main does not match required pattern ^never$");
    const deadline = Date.now() + WAIT_MS;
    while ((await evaluateMain(a)).allPassed) {
      if (Date.now() > deadline) throw new Error("replica A kept the stale policy");
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
});
