import { type Kysely, sql, type Transaction } from "kysely";
import type { ProjectRef, ProjectRules } from "../policy/policy.js";
import { listPolicies } from "./policy.repository.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/** The project's declared environments in declaration order; undefined when it declares none. */
export async function getProjectEnvironments(db: Db, project: ProjectRef): Promise<string[] | undefined> {
  const row = await db
    .selectFrom("project_environments")
    .select("environments")
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .executeTakeFirst();
  return row?.environments;
}

/** Replaces the project's declaration with `environments` (non-empty, folded, validated). */
export async function setProjectEnvironments(
  db: Db,
  project: ProjectRef,
  change: { environments: readonly string[]; updatedAt: Date; updatedBy: string },
): Promise<string[]> {
  const row = await db
    .insertInto("project_environments")
    .values({
      organisation: project.organisation,
      project: project.project,
      // Built from a JSON array in SQL: pg and PGlite bind a JSON string the same
      // way, and WITH ORDINALITY keeps the declared order.
      environments: sql<string[]>`array(
        select e from jsonb_array_elements_text(${JSON.stringify(change.environments)}::jsonb) with ordinality as t(e, i)
        order by i)`,
      updated_at: change.updatedAt,
      updated_by: change.updatedBy,
    })
    .onConflict((oc) =>
      oc.columns(["organisation", "project"]).doUpdateSet((eb) => ({
        environments: eb.ref("excluded.environments"),
        updated_at: eb.ref("excluded.updated_at"),
        updated_by: eb.ref("excluded.updated_by"),
      })),
    )
    .returning("environments")
    .executeTakeFirstOrThrow();
  return row.environments;
}

/** Removes the project's declaration; false when it had none. */
export async function deleteProjectEnvironments(db: Db, project: ProjectRef): Promise<boolean> {
  const result = await db
    .deleteFrom("project_environments")
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/**
 * Serialises the writers of a project's rules (policy create/update and
 * SetProjectEnvironments) until the transaction ends, so a policy naming an
 * environment and a declaration leaving it out cannot both commit. A
 * transaction-scoped advisory lock: there may be no row to lock yet.
 */
export async function lockProjectRules(trx: Transaction<DB>, project: ProjectRef): Promise<void> {
  await sql`select pg_advisory_xact_lock(${PROJECT_RULES_LOCK_CLASS}, hashtext(${JSON.stringify([project.organisation, project.project])}))`.execute(
    trx,
  );
}

/** First key of the two-key advisory lock space used for project rules (any constant unique in this codebase). */
const PROJECT_RULES_LOCK_CLASS = 1_917_001;

/** A project's policies and declaration together: what the policy cache holds per project. */
export async function loadProjectRules(db: Kysely<DB>, project: ProjectRef): Promise<ProjectRules> {
  const [policies, environments] = await Promise.all([listPolicies(db, project), getProjectEnvironments(db, project)]);
  return { policies, environments };
}
