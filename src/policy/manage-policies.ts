import { randomUUID } from "node:crypto";
import type { Kysely, Transaction } from "kysely";
import { loadRuleDirectory } from "../approval/load-rule-directory.js";
import { requireRulesSatisfiable } from "../approval/rules-satisfiable.js";
import type { Clock } from "../clock.js";
import { getProjectEnvironments, lockProjectRules } from "../db/environment.repository.js";
import * as policies from "../db/policy.repository.js";
import type { DB } from "../db/schema.js";
import { requirePolicyDeclared } from "../environment/declared-environments.js";
import { AlreadyExistsError, NotFoundError } from "../errors.js";
import type { Policy, PolicyConfig, ProjectRef } from "./policy.js";

export interface ManagePoliciesDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Called after a policy of `project` changed (cache invalidation on this replica). */
  readonly onPolicyChanged?: (project: ProjectRef) => void;
}

function policyNotFound(project: ProjectRef, name: string): NotFoundError {
  return new NotFoundError(`policy ${name} not found in ${project.organisation}/${project.project}`);
}

/**
 * Under the project's rules lock, FAILED_PRECONDITION unless every environment
 * `config` names is declared (when the project declares any). The lock keeps
 * a concurrent SetProjectEnvironments from dropping one before this commits.
 */
async function requireDeclaredInside(
  trx: Transaction<DB>,
  project: ProjectRef,
  config: PolicyConfig,
  now: Date,
): Promise<void> {
  await lockProjectRules(trx, project);
  requirePolicyDeclared(await getProjectEnvironments(trx, project), config, project);
  // Rules nobody can satisfy would deadlock the gate: refuse them now.
  if (config.kind === "external_approval" && (config.rules?.length ?? 0) > 0) {
    const dir = await loadRuleDirectory(trx, project, config.targetEnvironment, [{ config }], now);
    if (dir !== undefined) requireRulesSatisfiable(config, dir);
  }
}

/** Policy create, update, delete and list: the admin side of a project's gate. */
export function createManagePolicies(deps: ManagePoliciesDeps) {
  const { db, clock } = deps;
  const changed = (project: ProjectRef) => deps.onPolicyChanged?.(project);
  return {
    async create(project: ProjectRef, name: string, config: PolicyConfig): Promise<Policy> {
      const now = clock.now();
      const policy = await db
        .transaction()
        .execute(async (trx) => {
          await requireDeclaredInside(trx, project, config, now);
          return policies.insertPolicy(trx, {
            id: randomUUID(),
            project,
            name,
            enabled: true,
            config,
            createdAt: now,
            updatedAt: now,
          });
        })
        .catch((err: unknown) => {
          if ((err as { code?: string }).code === "23505")
            throw new AlreadyExistsError(
              `name: policy ${name} already exists in ${project.organisation}/${project.project}`,
              { cause: err },
            );
          throw err;
        });
      changed(project);
      return policy;
    },

    async update(
      project: ProjectRef,
      name: string,
      change: { enabled?: boolean; config?: PolicyConfig },
    ): Promise<Policy> {
      const write = (to: Kysely<DB> | Transaction<DB>) =>
        policies.updatePolicy(to, project, name, { ...change, updatedAt: clock.now() });
      const { config } = change;
      const policy =
        config === undefined
          ? await write(db)
          : await db.transaction().execute(async (trx) => {
              await requireDeclaredInside(trx, project, config, clock.now());
              return write(trx);
            });
      if (policy === undefined) throw policyNotFound(project, name);
      changed(project);
      return policy;
    },

    async delete(project: ProjectRef, name: string): Promise<void> {
      if (!(await policies.deletePolicy(db, project, name))) throw policyNotFound(project, name);
      changed(project);
    },

    list(project: ProjectRef): Promise<Policy[]> {
      return policies.listPolicies(db, project);
    },
  };
}
