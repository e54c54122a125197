import type { Database } from "../db/database.js";
import { compileBranchPattern } from "./branch-pattern.js";
import type { ProjectRef, ProjectRules } from "./policy.js";

/** Default number of projects whose rules stay cached (least recently used evicted first). */
export const DEFAULT_POLICY_CACHE_MAX_PROJECTS = 1_000;
/**
 * Default lifetime of a cached project, in milliseconds. Invalidation is by
 * change notification; this only bounds staleness should a notification be
 * lost (e.g. the LISTEN connection dropped while a policy changed).
 */
export const DEFAULT_POLICY_CACHE_TTL_MS = 5_000;
/**
 * NOTIFY channel that the triggers on `policies` and `project_environments`
 * signal with the changed project (`migrations/0005_policy_change_notify.sql`,
 * `migrations/0011_project_environments.sql`); payload `["org","project"]`.
 */
export const POLICY_CHANGED_CHANNEL = "releasegate_policy_changed";

export interface PolicyCacheOptions {
  /** Reads a project's policies and declared environments from the source of truth, in one go. */
  readonly load: (project: ProjectRef) => Promise<ProjectRules>;
  /** Default DEFAULT_POLICY_CACHE_MAX_PROJECTS. */
  readonly maxProjects?: number;
  /** Default DEFAULT_POLICY_CACHE_TTL_MS. */
  readonly ttlMs?: number;
  /** Monotonic milliseconds; default `performance.now`. */
  readonly now?: () => number;
}

/**
 * A bounded, per-project cache of what decides a project's gate: its
 * policies (branch patterns compiled) and its declared environments, so that
 * evaluations and votes read both without a database round trip.
 */
export interface PolicyCache {
  /** The project's rules; loads on a miss (concurrent misses share one load). */
  get(project: ProjectRef): Promise<ProjectRules>;
  /** Drops the project; the next get() reloads. Safe while a load is in flight. */
  invalidate(project: ProjectRef): void;
  clear(): void;
  readonly size: number;
}

interface Entry {
  readonly rules: Promise<ProjectRules>;
  readonly loadedAt: number;
}

const keyOf = (project: ProjectRef) => JSON.stringify([project.organisation, project.project]);

/** Compiles branch patterns now so the first evaluation does not pay for it. */
function precompile(rules: ProjectRules): ProjectRules {
  for (const p of rules.policies) {
    if (p.config.kind !== "branch_restriction") continue;
    try {
      compileBranchPattern(p.config.branchPattern);
    } catch {
      // Validated on write; should a stored pattern not compile, evaluation reports it.
    }
  }
  return rules;
}

export function createPolicyCache(options: PolicyCacheOptions): PolicyCache {
  const maxProjects = options.maxProjects ?? DEFAULT_POLICY_CACHE_MAX_PROJECTS;
  const ttlMs = options.ttlMs ?? DEFAULT_POLICY_CACHE_TTL_MS;
  const now = options.now ?? (() => performance.now());
  // Map order is recency order: a hit moves its entry to the end.
  const entries = new Map<string, Entry>();

  return {
    get(project) {
      const key = keyOf(project);
      const hit = entries.get(key);
      if (hit !== undefined && now() - hit.loadedAt < ttlMs) {
        entries.delete(key);
        entries.set(key, hit);
        return hit.rules;
      }
      // The entry is stored before the load resolves: an invalidation that
      // arrives mid-load deletes it, so a load that may have read the old
      // rows can never be put back into the cache afterwards.
      const entry: Entry = { rules: options.load(project).then(precompile), loadedAt: now() };
      entries.delete(key);
      entries.set(key, entry);
      entry.rules.catch(() => {
        if (entries.get(key) === entry) entries.delete(key);
      });
      while (entries.size > maxProjects) {
        const oldest = entries.keys().next().value as string;
        entries.delete(oldest);
      }
      return entry.rules;
    },
    invalidate(project) {
      entries.delete(keyOf(project));
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}

/** What change notifications arrive through (`Database.listen`). */
export type NotificationSource = Pick<Database, "listen">;

/**
 * Invalidates `cache` whenever any replica changes a project's policies or declared environments.
 * Returns the unsubscribe function.
 */
export function invalidateOnPolicyChange(source: NotificationSource, cache: PolicyCache): Promise<() => Promise<void>> {
  const onNotify = (payload: string) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      parsed = undefined;
    }
    if (Array.isArray(parsed) && typeof parsed[0] === "string" && typeof parsed[1] === "string")
      cache.invalidate({ organisation: parsed[0], project: parsed[1] });
    // Unreadable payload: we cannot tell which project changed, so forget all.
    else cache.clear();
  };
  // Changes made while the LISTEN connection was down went unheard: forget all.
  return source.listen(POLICY_CHANGED_CHANNEL, onNotify, () => cache.clear());
}
