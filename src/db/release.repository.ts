import type { Kysely, Selectable, Transaction } from "kysely";
import type { ProjectRef } from "../policy/policy.js";
import type { Deployment, DeploymentStatus, ReleaseIntent } from "../release/release.js";
import type { DB, DeploymentsTable, ReleaseIntentsTable } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

function toIntent(row: Selectable<ReleaseIntentsTable>): ReleaseIntent {
  return {
    id: row.id,
    project: { organisation: row.organisation, project: row.project },
    authorUserId: row.author_user_id,
    authorUsername: row.author_username,
    branch: row.branch,
    version: row.version,
    createdAt: row.created_at,
    registeredByUserId: row.registered_by_user_id,
    registeredByActorType: row.registered_by_actor_type === "service" ? "service" : "user",
  };
}

function toDeployment(row: Selectable<DeploymentsTable>): Deployment {
  return {
    id: String(row.id),
    project: { organisation: row.organisation, project: row.project },
    environment: row.environment,
    releaseIntentId: row.release_intent_id,
    status: row.status as DeploymentStatus,
    finishedAt: row.finished_at,
    recordedAt: row.recorded_at,
  };
}

/**
 * Inserts the intent unless its id exists; returns the stored row and whether
 * this call created it. Concurrent registrations of one id race safely.
 */
export async function insertIntentIfAbsent(
  db: Db,
  intent: ReleaseIntent,
): Promise<{ intent: ReleaseIntent; created: boolean }> {
  const inserted = await db
    .insertInto("release_intents")
    .values({
      id: intent.id,
      organisation: intent.project.organisation,
      project: intent.project.project,
      author_user_id: intent.authorUserId,
      author_username: intent.authorUsername,
      branch: intent.branch,
      version: intent.version,
      created_at: intent.createdAt,
      registered_by_user_id: intent.registeredByUserId,
      registered_by_actor_type: intent.registeredByActorType,
    })
    .onConflict((oc) => oc.column("id").doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted !== undefined) return { intent: toIntent(inserted), created: true };
  const existing = await db
    .selectFrom("release_intents")
    .selectAll()
    .where("id", "=", intent.id)
    .executeTakeFirstOrThrow();
  return { intent: toIntent(existing), created: false };
}

/** The intent if it exists in this project (an intent of another project is "not found"). */
export async function findIntent(db: Db, project: ProjectRef, id: string): Promise<ReleaseIntent | undefined> {
  const row = await db
    .selectFrom("release_intents")
    .selectAll()
    .where("id", "=", id)
    .where("organisation", "=", project.organisation)
    .where("project", "=", project.project)
    .executeTakeFirst();
  return row === undefined ? undefined : toIntent(row);
}

export async function insertDeployment(db: Db, d: Omit<Deployment, "id">): Promise<Deployment> {
  const row = await db
    .insertInto("deployments")
    .values({
      organisation: d.project.organisation,
      project: d.project.project,
      environment: d.environment,
      release_intent_id: d.releaseIntentId,
      status: d.status,
      finished_at: d.finishedAt,
      recorded_at: d.recordedAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toDeployment(row);
}
