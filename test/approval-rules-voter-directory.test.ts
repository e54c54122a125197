import { randomUUID } from "node:crypto";
import fc from "fast-check";
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IntentParties, judgeRules } from "../src/approval/judge-rules.js";
import { loadRuleDirectory } from "../src/approval/load-rule-directory.js";
import { directoryNeeds, voterDirectory } from "../src/approval/voter-directory.js";
import { readEvaluationRows } from "../src/db/evaluation.repository.js";
import type { ApprovalRule, ExternalApprovalConfig } from "../src/policy/policy.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

// EvaluatePolicies reads the directory for the voters plus capped candidate
// lists (voter-directory.ts); ListEligibleApprovers and votes read all of it.
// On random directories in the real database, both judge alike.

const PEOPLE = Array.from({ length: 20 }, (_, i) => `p${String(i).padStart(2, "0")}`);
const GROUPS = ["g0", "g1"];
const ROLES = ["viewer", "member", "maintainer", "admin"] as const;
const NOW = new Date("2026-06-01T12:00:00Z");
const PAST = new Date("2026-06-01T11:59:59Z");
const FUTURE = new Date("2026-06-01T12:00:01Z");
const ENV = "prod";

const scope = fc.constantFrom(
  { scope: "organisation", scope_id: "" },
  { scope: "organisation", scope_id: "" },
  { scope: "organisation", scope_id: "" },
  { scope: "project", scope_id: "web" },
  { scope: "project", scope_id: "api" },
  { scope: "environment", scope_id: "web/prod" },
  { scope: "environment", scope_id: "web/staging" },
);
const expiry = fc.constantFrom(null, null, null, PAST, NOW, FUTURE, FUTURE);
const rule: fc.Arbitrary<ApprovalRule> = fc.oneof(
  fc.record({ group: fc.constantFrom(...GROUPS), requiredApprovals: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ minRole: fc.constantFrom("member", "maintainer", "admin"), requiredApprovals: fc.integer({ min: 1, max: 3 }) }),
);
const world = fc.record({
  idpGroup: fc.option(fc.constantFrom(...GROUPS), { nil: undefined }),
  members: fc.uniqueArray(fc.record({ group: fc.constantFrom(...GROUPS), user: fc.constantFrom(...PEOPLE), scope, expires: expiry }), {
    selector: (m) => `${m.group}|${m.user}`,
    minLength: 24,
    maxLength: 40,
  }),
  grants: fc.array(fc.record({ user: fc.constantFrom(...PEOPLE), role: fc.constantFrom(...ROLES), scope, expires: expiry }), { minLength: 8, maxLength: 40 }),
  votes: fc.uniqueArray(
    fc.record({
      user: fc.constantFrom(...PEOPLE),
      approved: fc.boolean(),
      tokenRole: fc.option(fc.constantFrom(...ROLES), { nil: undefined }),
      idp: fc.boolean(),
    }),
    { selector: (v) => v.user, maxLength: 8 },
  ),
  author: fc.constantFrom(...PEOPLE),
  registrant: fc.constantFrom(...PEOPLE),
  registrantIsUser: fc.boolean(),
  rules: fc.array(rule, { minLength: 1, maxLength: 3 }),
  distinct: fc.boolean(),
  required: fc.integer({ min: 1, max: 4 }),
});

/** Counts the statements Kysely sends. */
class StatementCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.count++;
    return args.node;
  }
  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result);
  }
}

let db: TestDatabase;
let run = 0;
/** Runs in which some candidate list was cut: the property must meet them too. */
let cut = 0;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.dispose());

describe("the evaluation's directory (voters and capped candidates)", () => {
  it("judges like the whole directory: same verdict, counts, lapses and unmeetable rules; candidate lists a prefix", async () => {
    await fc.assert(
      fc.asyncProperty(world, async (w) => {
        const k = db.database.db;
        const organisation = `org${run++}`;
        const project = { organisation, project: "web" };
        const intentId = randomUUID();
        await k
          .insertInto("release_intents")
          .values({
            id: intentId,
            organisation,
            project: "web",
            author_user_id: w.author,
            author_username: w.author,
            branch: "main",
            version: "v1",
            created_at: NOW,
            registered_by_user_id: w.registrant,
            registered_by_actor_type: w.registrantIsUser ? "user" : "service",
          })
          .execute();
        for (const name of GROUPS)
          await k
            .insertInto("approver_groups")
            .values({ organisation, name, idp_group: name === w.idpGroup ? `idp-${name}` : null, created_at: NOW, created_by: "t" })
            .execute();
        for (const m of w.members)
          await k
            .insertInto("approver_group_members")
            .values({ organisation, group_name: m.group, user_id: m.user, display_name: m.user, ...m.scope, expires_at: m.expires, added_at: NOW, added_by: "t" })
            .execute();
        for (const g of w.grants)
          await k
            .insertInto("role_grants")
            .values({ id: randomUUID(), organisation, user_id: g.user, role: g.role, ...g.scope, expires_at: g.expires, granted_at: NOW, granted_by: "t" })
            .execute();
        for (const v of w.votes)
          await k
            .insertInto("approval_votes")
            .values({
              release_intent_id: intentId,
              environment: ENV,
              user_id: v.user,
              username: v.user,
              decision: v.approved ? "approved" : "rejected",
              decision_kind: "peer",
              first_cast_at: NOW,
              decided_at: NOW,
              voter_idp_groups: JSON.stringify(v.idp && w.idpGroup !== undefined ? [`idp-${w.idpGroup}`] : []),
              voter_token_role: v.tokenRole ?? null,
            })
            .execute();
        const config: ExternalApprovalConfig = {
          kind: "external_approval",
          targetEnvironment: ENV,
          requiredApprovals: w.required,
          rules: w.rules,
          distinctApprovers: w.distinct,
        };
        const needs = directoryNeeds([{ config }]);
        const rows = await readEvaluationRows(k, project, { releaseIntentId: intentId, sourceEnvironments: [], votesEnvironment: ENV, directory: { needs: needs!, now: NOW } });
        const full = await loadRuleDirectory(k, project, ENV, [{ config }], NOW);
        const capped = voterDirectory(rows.directory!, needs!, project, ENV, NOW);
        const parties: IntentParties = { authorId: w.author, ...(w.registrantIsUser ? { registrantId: w.registrant } : {}) };
        if (capped.cappedRules !== undefined && capped.cappedRules.size > 0) cut++;
        const want = judgeRules(config, rows.votes, full!, parties);
        const got = judgeRules(config, rows.votes, capped, parties);
        expect(got.passed).toBe(want.passed);
        expect(got.countedApprovals).toBe(want.countedApprovals);
        expect(got.lapsed).toEqual(want.lapsed);
        expect(got.unmeetable).toEqual(want.unmeetable);
        got.progress.forEach((p, r) => {
          const q = want.progress[r]!;
          expect([p.rule, p.requiredApprovals, p.currentApprovals, p.approvedBy]).toEqual([q.rule, q.requiredApprovals, q.currentApprovals, q.approvedBy]);
          expect(q.mayStillApprove.slice(0, p.mayStillApprove.length)).toEqual(p.mayStillApprove);
          if (p.mayStillApprove.length < q.mayStillApprove.length) expect(p.openEnded).toBe(true);
          if (!p.openEnded) expect(p.mayStillApprove).toEqual(q.mayStillApprove);
        });
      }),
      { numRuns: 100 },
    );
    expect(cut).toBeGreaterThan(10);
  }, 240_000);

  it("cuts a long candidate list after the first ids and calls it open-ended, in the evaluation's one statement", async () => {
    const k = db.database.db;
    const organisation = "big";
    const intentId = randomUUID();
    await k
      .insertInto("release_intents")
      .values({ id: intentId, organisation, project: "web", author_user_id: "p00", author_username: "p00", branch: "main", version: "v1", created_at: NOW, registered_by_user_id: "p00", registered_by_actor_type: "user" })
      .execute();
    await k.insertInto("approver_groups").values({ organisation, name: "sre", idp_group: null, created_at: NOW, created_by: "t" }).execute();
    for (const user of PEOPLE)
      await k
        .insertInto("approver_group_members")
        .values({ organisation, group_name: "sre", user_id: user, display_name: user, scope: "organisation", scope_id: "", expires_at: null, added_at: NOW, added_by: "t" })
        .execute();
    const config: ExternalApprovalConfig = { kind: "external_approval", targetEnvironment: ENV, requiredApprovals: 2, rules: [{ group: "sre", requiredApprovals: 2 }] };
    const needs = directoryNeeds([{ config }])!;
    expect(needs.candidateLimit).toBe(6);
    const counter = new StatementCounter();
    const rows = await readEvaluationRows(k.withPlugin(counter), { organisation, project: "web" }, { releaseIntentId: intentId, sourceEnvironments: ["staging"], votesEnvironment: ENV, directory: { needs, now: NOW } });
    // The directory comes with the intent, deploys and votes: still one statement.
    expect(counter.count).toBe(1);
    const j = judgeRules(config, [], voterDirectory(rows.directory!, needs, { organisation, project: "web" }, ENV, NOW), { authorId: "p00" });
    // p00 is the author: the first six others, and more may exist.
    expect(j.progress[0]?.mayStillApprove).toEqual(["p01", "p02", "p03", "p04", "p05", "p06"]);
    expect(j.progress[0]?.openEnded).toBe(true);
  });
});
