import { type Kysely, type Selectable, sql, type Transaction } from "kysely";
import type { Policy, PolicyConfig, PolicyKind, ProjectRef } from "../policy/policy.js";
import type { DB, PoliciesTable } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

export function toPolicy(row: Selectable<PoliciesTable>): Policy {
  // Stored as { kind-specific fields }, kind in policy_type.
  const config = { ...row.config, kind: row.policy_type as PolicyKind } as unknown as PolicyConfig;
  return {
    id: row.id,
    project: { organisation: row.organisation, project: row.project },
    name: row.name,
    enabled: row.enabled,
    config,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function configColumns(config: PolicyConfig): { policy_type: string; config: string } {
  const { kind, ...rest } = config;
  return { policy_type: kind, config: JSON.stringify(rest) };
}

/** Inserts a policy; a duplicate name surfaces as pg 23505 (→ ALREADY_EXISTS). */
export async function insertPolicy(db: Db, policy: Policy): Promise<Policy> {
  const row = await db
    .insertInto("policies")
    .values({
      id: policy.id,
      organisation: policy.project.organisation,
      project: policy.project.project,
      name: policy.name,
      enabled: policy.enabled,
      ...configColumns(policy.config),
      created_at: policy.createdAt,
      updated_at: policy.updatedAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toPolicy(row);
}

export async function findPolicy(db: Db, project: ProjectRef, name: string): Promise<Policy | undefined> {
  const row = await db
    .selectFrom("policies")
    .selectAll()
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .where("name", "=", name)
    .executeTakeFirst();
  return row === undefined ? undefined : toPolicy(row);
}

export async function updatePolicy(
  db: Db,
  project: ProjectRef,
  name: string,
  change: { enabled?: boolean; config?: PolicyConfig; updatedAt: Date },
): Promise<Policy | undefined> {
  const row = await db
    .updateTable("policies")
    .set({
      updated_at: change.updatedAt,
      ...(change.enabled !== undefined ? { enabled: change.enabled } : {}),
      ...(change.config !== undefined ? configColumns(change.config) : {}),
    })
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .where("name", "=", name)
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? undefined : toPolicy(row);
}

/** Returns false when no such policy existed. */
export async function deletePolicy(db: Db, project: ProjectRef, name: string): Promise<boolean> {
  const result = await db
    .deleteFrom("policies")
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .where("name", "=", name)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** All policies of a project, ordered by name. */
export async function listPolicies(db: Db, project: ProjectRef): Promise<Policy[]> {
  const rows = await db
    .selectFrom("policies")
    .selectAll()
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    // Byte order, whatever the database's collation (en_US would ignore '-'):
    // the same order evaluation uses, on Postgres and PGlite alike.
    .orderBy(sql`name collate "C"`)
    .execute();
  return rows.map(toPolicy);
}
