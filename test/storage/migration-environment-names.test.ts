import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultMigrationsDir, migrateToLatest } from "../../src/db/migrate.js";
import { splitSqlStatements } from "../../src/db/sql-script.js";
import { createEmptyDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";

// Migration 0010 folds environment names written before names were
// case-insensitive. The rows are seeded through SQL on a database migrated up
// to the file before it, as a database of an older release would be.

const MIGRATION = "0010_environment_names";
const dir = defaultMigrationsDir();
const INTENT = "11111111-1111-4111-8111-111111111111";
const OTHER_INTENT = "22222222-2222-4222-8222-222222222222";

let opened: TestDatabase;
let db: Kysely<unknown>;

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();

async function seed(): Promise<void> {
  for (const id of [INTENT, OTHER_INTENT])
    await sql`insert into release_intents (id, organisation, project, author_user_id, author_username, created_at)
              values (${id}, 'acme', 'web', 'alice', 'alice', ${at(0)})`.execute(db);
  const policy = (id: string, name: string, type: string, config: object) =>
    sql`insert into policies (id, organisation, project, name, policy_type, config, created_at, updated_at)
        values (${id}, 'acme', 'web', ${name}, ${type}, ${JSON.stringify(config)}::jsonb, ${at(0)}, ${at(0)})`.execute(db);
  await policy("a0000000-0000-4000-8000-000000000001", "soak", "soak_time", {
    sourceEnvironment: "Staging",
    targetEnvironment: "PROD",
    durationSeconds: 60,
  });
  await policy("a0000000-0000-4000-8000-000000000002", "branch", "branch_restriction", {
    targetEnvironment: "Prod ",
    branchPattern: "^main$",
  });
  await policy("a0000000-0000-4000-8000-000000000003", "two-eyes", "external_approval", {
    targetEnvironment: "prod",
    requiredApprovals: 2,
  });
  for (const [env, minute] of [
    ["Staging", 1],
    ["staging", 2],
    ["Prod\u200b", 3],
    ["ｐｒｏｄ", 4],
    ["EU-West.1", 5],
  ] as const)
    await sql`insert into deployments (organisation, project, environment, release_intent_id, status, finished_at)
              values ('acme', 'web', ${env}, ${INTENT}, 'succeeded', ${at(minute)})`.execute(db);
  const vote = (intent: string, env: string, user: string, decision: string, minute: number) =>
    sql`insert into approval_votes (release_intent_id, environment, user_id, username, decision, decision_kind, first_cast_at, decided_at)
        values (${intent}, ${env}, ${user}, ${user}, ${decision}, 'peer', ${at(minute)}, ${at(minute)})`.execute(db);
  // alice voted under two spellings of prod: the later decision (rejected, on "prod") stays.
  await vote(INTENT, "Prod", "alice", "approved", 10);
  await vote(INTENT, "prod", "alice", "rejected", 11);
  // carol too, the later one under the spelling that changes ("QA").
  await vote(INTENT, "qa", "carol", "rejected", 12);
  await vote(INTENT, "QA", "carol", "approved", 13);
  // Three spellings, the latest in the middle.
  await vote(INTENT, "DEV", "dave", "rejected", 14);
  await vote(INTENT, "Dev", "dave", "approved", 16);
  await vote(INTENT, "dev", "dave", "rejected", 15);
  // No collision: bob only has "PROD"; the same user on another intent is another vote.
  await vote(INTENT, "PROD", "bob", "approved", 17);
  await vote(OTHER_INTENT, "Prod", "alice", "approved", 18);
  // Stays invalid after folding: left alone.
  await vote(INTENT, "Prod ", "erin", "approved", 19);
  const history = (env: string, user: string, minute: number) =>
    sql`insert into approval_history (organisation, project, release_intent_id, environment, user_id, username, decision, decision_kind, decided_at)
        values ('acme', 'web', ${INTENT}, ${env}, ${user}, ${user}, 'approved', 'peer', ${at(minute)})`.execute(db);
  await history("Prod", "alice", 10);
  await history("prod", "alice", 11);
  await history("QA", "carol", 13);
  await history("Prod ", "erin", 19);
  await sql`insert into outbox (event_id, release_intent_id, subject, payload, created_at)
            values ('b0000000-0000-4000-8000-000000000001', ${INTENT}, 'releasegate.approval.acme.web',
                    ${JSON.stringify({ organisation: "acme", project: "web", targetEnvironment: "Prod" })}::jsonb, ${at(10)})`.execute(
    db,
  );
}

interface Snapshot {
  policies: Array<{ name: string; config: Record<string, unknown> }>;
  deployments: string[];
  votes: Array<[string, string, string, string]>;
  history: Array<[string, string]>;
  outbox: unknown[];
}

async function snapshot(): Promise<Snapshot> {
  const q = async <T>(query: ReturnType<typeof sql<T>>) => (await query.execute(db)).rows;
  const policies = await q<{ name: string; config: Record<string, unknown> }>(
    sql`select name, config from policies order by name collate "C"`,
  );
  const deployments = await q<{ environment: string }>(sql`select environment from deployments order by id`);
  const votes = await q<{ release_intent_id: string; environment: string; user_id: string; decision: string }>(
    sql`select release_intent_id, environment, user_id, decision from approval_votes
        order by release_intent_id, user_id, environment collate "C"`,
  );
  const history = await q<{ environment: string; user_id: string }>(
    sql`select environment, user_id from approval_history order by seq`,
  );
  const outbox = await q<{ payload: unknown }>(sql`select payload from outbox order by seq`);
  return {
    policies,
    deployments: deployments.map((r) => r.environment),
    votes: votes.map((r) => [r.release_intent_id, r.environment, r.user_id, r.decision]),
    history: history.map((r) => [r.environment, r.user_id]),
    outbox: outbox.map((r) => r.payload),
  };
}

describe(`migration ${MIGRATION} on ${testDatabaseKind()}`, { timeout: 60_000 }, () => {
  beforeAll(async () => {
    opened = await createEmptyDatabase(testDatabaseKind());
    db = opened.database.db as Kysely<unknown>;
    const before = mkdtempSync(join(tmpdir(), "rg-migrations-"));
    try {
      for (const f of readdirSync(dir).filter((f) => f.endsWith(".sql") && f < `${MIGRATION}.sql`))
        copyFileSync(join(dir, f), join(before, f));
      await migrateToLatest(db as never, before);
    } finally {
      rmSync(before, { recursive: true, force: true });
    }
    await seed();
    expect(await migrateToLatest(db as never)).toContain(MIGRATION);
  });
  afterAll(() => opened?.dispose());

  const expected: Snapshot = {
    policies: [
      { name: "branch", config: { targetEnvironment: "Prod ", branchPattern: "^main$" } },
      { name: "soak", config: { sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 60 } },
      { name: "two-eyes", config: { targetEnvironment: "prod", requiredApprovals: 2 } },
    ],
    deployments: ["staging", "staging", "Prod\u200b", "ｐｒｏｄ", "eu-west.1"],
    votes: [
      [INTENT, "prod", "alice", "rejected"],
      [INTENT, "prod", "bob", "approved"],
      [INTENT, "qa", "carol", "approved"],
      [INTENT, "dev", "dave", "approved"],
      [INTENT, "Prod ", "erin", "approved"],
      [OTHER_INTENT, "prod", "alice", "approved"],
    ],
    history: [
      ["prod", "alice"],
      ["prod", "alice"],
      ["qa", "carol"],
      ["Prod ", "erin"],
    ],
    outbox: [{ organisation: "acme", project: "web", targetEnvironment: "Prod" }],
  };

  it("folds policies' config, deployments, votes and history; leaves names still invalid and the outbox alone", async () => {
    expect(await snapshot()).toEqual(expected);
  });

  it("changes nothing when applied again", async () => {
    const statements = splitSqlStatements(readFileSync(join(dir, `${MIGRATION}.sql`), "utf8"));
    for (const s of statements) await sql.raw(s).execute(db);
    expect(await snapshot()).toEqual(expected);
  });

  it("leaves approval_history append-only afterwards", async () => {
    const { rows } = await sql<{ tgenabled: string }>`
      select tgenabled from pg_trigger where tgname = 'approval_history_no_change'`.execute(db);
    expect(rows).toEqual([{ tgenabled: "O" }]);
    await expect(sql`update approval_history set environment = 'x'`.execute(db)).rejects.toThrow(
      "approval_history is append-only",
    );
    await expect(sql`delete from approval_history`.execute(db)).rejects.toThrow("approval_history is append-only");
  });

  it("leaves no helper function behind", async () => {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_proc where proname = 'releasegate_fold_environment'`.execute(db);
    expect(rows).toEqual([{ n: 0 }]);
  });
});
