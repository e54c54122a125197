import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEvaluationRows } from "../../src/db/evaluation.repository.js";
import { findIntent, insertDeployment, insertIntentIfAbsent } from "../../src/db/release.repository.js";
import type { ProjectRef } from "../../src/policy/policy.js";
import type { ReleaseIntent } from "../../src/release/release.js";
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(() => tdb?.dispose());

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000);
let seq = 0;
const freshProject = (): ProjectRef => ({ organisation: "acme", project: `rel-${++seq}` });

function intent(project: ProjectRef, over: Partial<ReleaseIntent> = {}): ReleaseIntent {
  return {
    id: randomUUID(),
    project,
    authorUserId: "alice",
    authorUsername: "Alice",
    branch: "main",
    version: "1.0.0",
    createdAt: at(0),
    registeredByUserId: "alice",
    registeredByActorType: "user",
    ...over,
  };
}

describe(`release repository on ${testDatabaseKind()}`, () => {
  it("inserts an intent once; the second insert returns the stored one", async () => {
    const project = freshProject();
    const i = intent(project);
    expect(await insertIntentIfAbsent(tdb.database.db, i)).toEqual({ intent: i, created: true });
    const again = await insertIntentIfAbsent(tdb.database.db, { ...i, version: "2.0.0", createdAt: at(5) });
    expect(again).toEqual({ intent: i, created: false });
  });

  it("lets concurrent registrations of one id race to a single row", async () => {
    const project = freshProject();
    const i = intent(project);
    const results = await Promise.all(Array.from({ length: 8 }, () => insertIntentIfAbsent(tdb.database.db, i)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) expect(r.intent).toEqual(i);
  });

  it("finds an intent only within its project", async () => {
    const project = freshProject();
    const i = intent(project);
    await insertIntentIfAbsent(tdb.database.db, i);
    expect(await findIntent(tdb.database.db, project, i.id)).toEqual(i);
    expect(await findIntent(tdb.database.db, freshProject(), i.id)).toBeUndefined();
  });

  it("reads the latest successful deploy per environment, of an intent or of the project", async () => {
    const project = freshProject();
    const a = intent(project);
    const b = intent(project);
    await insertIntentIfAbsent(tdb.database.db, a);
    await insertIntentIfAbsent(tdb.database.db, b);
    const deploy = (i: ReleaseIntent, environment: string, status: "succeeded" | "failed", s: number) =>
      insertDeployment(tdb.database.db, { project, environment, releaseIntentId: i.id, status, finishedAt: at(s), recordedAt: at(s) });
    await deploy(a, "staging", "succeeded", 10);
    await deploy(a, "staging", "succeeded", 30);
    await deploy(b, "staging", "succeeded", 20);
    await deploy(b, "staging", "failed", 90);
    await deploy(b, "qa", "succeeded", 40);

    const sourceEnvironments = ["staging", "qa", "never"];
    const latest = async (p: ProjectRef, releaseIntentId?: string, envs = sourceEnvironments) =>
      (await readEvaluationRows(tdb.database.db, p, { releaseIntentId, sourceEnvironments: envs })).lastSuccessfulDeploy;
    expect(await latest(project, a.id)).toEqual(new Map([["staging", at(30)]]));
    expect(await latest(project, b.id)).toEqual(
      new Map([
        ["staging", at(20)],
        ["qa", at(40)],
      ]),
    );
    expect(await latest(project)).toEqual(
      new Map([
        ["staging", at(30)],
        ["qa", at(40)],
      ]),
    );
    expect(await latest(freshProject())).toEqual(new Map());
    expect(await latest(project, undefined, [])).toEqual(new Map());
  });

  it("reads the intent's branch with the deploys, and nothing for an intent of another project", async () => {
    const project = freshProject();
    const i = intent(project, { branch: "release/7" });
    await insertIntentIfAbsent(tdb.database.db, i);
    const rows = await readEvaluationRows(tdb.database.db, project, { releaseIntentId: i.id, sourceEnvironments: [] });
    expect(rows).toEqual({
      intent: { branch: "release/7", author: "alice", registrant: "alice", registrantIsUser: true },
      lastSuccessfulDeploy: new Map(),
      votes: [],
    });
    const elsewhere = await readEvaluationRows(tdb.database.db, freshProject(), {
      releaseIntentId: i.id,
      sourceEnvironments: [],
    });
    expect(elsewhere.intent).toBeUndefined();
  });

  it("keeps millisecond precision of recorded_at", async () => {
    const project = freshProject();
    const i = intent(project);
    await insertIntentIfAbsent(tdb.database.db, i);
    const finishedAt = new Date("2026-03-04T05:06:07.891Z");
    await insertDeployment(tdb.database.db, {
      project,
      environment: "staging",
      releaseIntentId: i.id,
      status: "succeeded",
      finishedAt,
      recordedAt: finishedAt,
    });
    const rows = await readEvaluationRows(tdb.database.db, project, {
      releaseIntentId: i.id,
      sourceEnvironments: ["staging"],
    });
    expect(rows.lastSuccessfulDeploy.get("staging")?.toISOString()).toBe("2026-03-04T05:06:07.891Z");
  });

  it("rejects a deployment of an intent that does not exist (foreign key)", async () => {
    await expect(
      insertDeployment(tdb.database.db, {
        project: freshProject(),
        environment: "staging",
        releaseIntentId: randomUUID(),
        status: "succeeded",
        finishedAt: at(0),
        recordedAt: at(0),
      }),
    ).rejects.toMatchObject({ code: "23503" });
  });
});
