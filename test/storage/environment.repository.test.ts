import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deleteProjectEnvironments,
  getProjectEnvironments,
  loadProjectRules,
  setProjectEnvironments,
} from "../../src/db/environment.repository.js";
import { insertPolicy } from "../../src/db/policy.repository.js";
import type { ProjectRef } from "../../src/policy/policy.js";
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(() => tdb?.dispose());

const T0 = new Date("2026-01-01T00:00:00.000Z");
let seq = 0;
const freshProject = (): ProjectRef => ({ organisation: "acme", project: `envs-${++seq}` });

describe(`environment repository on ${testDatabaseKind()}`, () => {
  it("has no declaration for a new project", async () => {
    expect(await getProjectEnvironments(tdb.database.db, freshProject())).toBeUndefined();
  });

  it("stores the list in the given order and replaces it on a second set", async () => {
    const db = tdb.database.db;
    const p = freshProject();
    const order = ["prod", "dev", "staging", "a.b_c-d", "0"];
    expect(await setProjectEnvironments(db, p, { environments: order, updatedAt: T0, updatedBy: "ada" })).toEqual(order);
    expect(await getProjectEnvironments(db, p)).toEqual(order);
    expect(await setProjectEnvironments(db, p, { environments: ["qa"], updatedAt: T0, updatedBy: "bob" })).toEqual(["qa"]);
    const { rows } = await sql<{ updated_by: string; n: number }>`
      select updated_by, count(*) over ()::int as n from project_environments
      where organisation = ${p.organisation} and project = ${p.project}`.execute(db);
    expect(rows).toEqual([{ updated_by: "bob", n: 1 }]);
  });

  it("keeps projects apart and deletes one declaration", async () => {
    const db = tdb.database.db;
    const [a, b] = [freshProject(), freshProject()];
    await setProjectEnvironments(db, a, { environments: ["dev"], updatedAt: T0, updatedBy: "ada" });
    await setProjectEnvironments(db, b, { environments: ["prod"], updatedAt: T0, updatedBy: "ada" });
    expect(await deleteProjectEnvironments(db, a)).toBe(true);
    expect(await deleteProjectEnvironments(db, a)).toBe(false);
    expect(await getProjectEnvironments(db, a)).toBeUndefined();
    expect(await getProjectEnvironments(db, b)).toEqual(["prod"]);
  });

  it("loads a project's policies and declaration together", async () => {
    const db = tdb.database.db;
    const p = freshProject();
    expect(await loadProjectRules(db, p)).toEqual({ policies: [], environments: undefined });
    await insertPolicy(db, {
      id: "c0000000-0000-4000-8000-000000000001",
      project: p,
      name: "gate",
      enabled: true,
      config: { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: 1 },
      createdAt: T0,
      updatedAt: T0,
    });
    await setProjectEnvironments(db, p, { environments: ["dev", "prod"], updatedAt: T0, updatedBy: "ada" });
    const rules = await loadProjectRules(db, p);
    expect(rules.policies.map((x) => x.name)).toEqual(["gate"]);
    expect(rules.environments).toEqual(["dev", "prod"]);
  });
});
