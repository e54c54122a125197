import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deletePolicy,
  findPolicy,
  insertPolicy,
  listPolicies,
  updatePolicy,
} from "../../src/db/policy.repository.js";
import type { Policy, PolicyConfig, ProjectRef } from "../../src/policy/policy.js";
import { createTestDatabase, type TestDatabase, testDatabaseKind } from "../support/database.js";

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(() => tdb?.dispose());

const T0 = new Date("2026-01-01T00:00:00.000Z");
let seq = 0;
const freshProject = (): ProjectRef => ({ organisation: "acme", project: `repo-${++seq}` });

function policy(project: ProjectRef, name: string, config: PolicyConfig): Policy {
  return { id: randomUUID(), project, name, enabled: true, config, createdAt: T0, updatedAt: T0 };
}
const soak: PolicyConfig = { kind: "soak_time", sourceEnvironment: "staging", targetEnvironment: "prod", durationSeconds: 315_360_000 };
const branch: PolicyConfig = { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^release/\\d+$" };
const approval: PolicyConfig = { kind: "external_approval", targetEnvironment: "prod", requiredApprovals: 100 };

describe(`policy repository on ${testDatabaseKind()}`, () => {
  it.each([soak, branch, approval])("round-trips a $kind config", async (config) => {
    const project = freshProject();
    const p = policy(project, "gate", config);
    expect(await insertPolicy(tdb.database.db, p)).toEqual(p);
    expect(await findPolicy(tdb.database.db, project, "gate")).toEqual(p);
  });

  it("reports a duplicate name as SQLSTATE 23505 (mapped to ALREADY_EXISTS)", async () => {
    const project = freshProject();
    await insertPolicy(tdb.database.db, policy(project, "gate", soak));
    await expect(insertPolicy(tdb.database.db, policy(project, "gate", branch))).rejects.toMatchObject({
      code: "23505",
    });
  });

  it("updates enabled and config independently", async () => {
    const project = freshProject();
    await insertPolicy(tdb.database.db, policy(project, "gate", soak));
    const t1 = new Date("2026-01-02T00:00:00.000Z");
    const disabled = await updatePolicy(tdb.database.db, project, "gate", { enabled: false, updatedAt: t1 });
    expect(disabled).toMatchObject({ enabled: false, config: soak, updatedAt: t1, createdAt: T0 });
    const replaced = await updatePolicy(tdb.database.db, project, "gate", { config: branch, updatedAt: t1 });
    expect(replaced).toMatchObject({ enabled: false, config: branch });
  });

  it("returns undefined when updating a missing policy, false when deleting one", async () => {
    const project = freshProject();
    expect(await updatePolicy(tdb.database.db, project, "nope", { enabled: true, updatedAt: T0 })).toBeUndefined();
    expect(await deletePolicy(tdb.database.db, project, "nope")).toBe(false);
  });

  it("deletes only the named policy of the named project", async () => {
    const a = freshProject();
    const b = freshProject();
    await insertPolicy(tdb.database.db, policy(a, "gate", soak));
    await insertPolicy(tdb.database.db, policy(b, "gate", soak));
    expect(await deletePolicy(tdb.database.db, a, "gate")).toBe(true);
    expect(await findPolicy(tdb.database.db, a, "gate")).toBeUndefined();
    expect(await findPolicy(tdb.database.db, b, "gate")).toBeDefined();
  });

  it("lists in byte order of the name, the order evaluation uses, whatever the collation", async () => {
    const project = freshProject();
    const names = ["ab", "a-c", "a1", "b", "a-b", "9z", "a"];
    for (const name of names) await insertPolicy(tdb.database.db, policy(project, name, soak));
    const listed = (await listPolicies(tdb.database.db, project)).map((p) => p.name);
    expect(listed).toEqual([...names].sort());
    expect(listed).toEqual(["9z", "a", "a-b", "a-c", "a1", "ab", "b"]);
  });
});
