import type { Kysely, Transaction } from "kysely";
import type { ApproverGroup } from "../approver/directory.js";
import { listGrantsCovering, listGroups } from "../db/approver.repository.js";
import type { DB } from "../db/schema.js";
import type { Policy, ProjectRef } from "../policy/policy.js";
import type { RuleDirectory } from "./eligibility.js";

/**
 * Reads what the approval rules of `policies` need for `project` and
 * `environment`: the groups they name (with members) and, when a rule names
 * a role, the grants that can count there now. Undefined when no policy has rules
 * (nothing is read: policies without rules cost what they always did). The
 * reads run concurrently.
 */
export async function loadRuleDirectory(
  db: Kysely<DB> | Transaction<DB>,
  project: ProjectRef,
  environment: string,
  policies: readonly Pick<Policy, "config">[],
  now: Date,
): Promise<RuleDirectory | undefined> {
  const groupNames = new Set<string>();
  let roles = false;
  for (const p of policies) {
    if (p.config.kind !== "external_approval") continue;
    for (const r of p.config.rules ?? []) {
      if ("group" in r) groupNames.add(r.group);
      else roles = true;
    }
  }
  if (groupNames.size === 0 && !roles) return undefined;
  const [groups, grants] = await Promise.all([
    listGroups(db, project.organisation, [...groupNames]),
    roles ? listGrantsCovering(db, project.organisation, project.project, environment, now) : Promise.resolve([]),
  ]);
  return {
    organisation: project.organisation,
    at: { project: project.project, environment },
    now,
    groups: new Map<string, ApproverGroup>(groups.map((g) => [g.name, g])),
    grants,
  };
}
