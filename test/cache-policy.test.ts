import { describe, expect, it } from "vitest";
import type { Policy, ProjectRef, ProjectRules } from "../src/policy/policy.js";
import { createPolicyCache, invalidateOnPolicyChange, POLICY_CHANGED_CHANNEL } from "../src/policy/policy-cache.js";

const web: ProjectRef = { organisation: "acme", project: "web" };
const api: ProjectRef = { organisation: "acme", project: "api" };

function policy(name: string, project = web): Policy {
  const at = new Date(0);
  return {
    id: name,
    project,
    name,
    enabled: true,
    config: { kind: "branch_restriction", targetEnvironment: "prod", branchPattern: "^main$" },
    createdAt: at,
    updatedAt: at,
  };
}

const rules = (policies: Policy[], environments?: string[]): ProjectRules => ({ policies, environments });
const names = (r: ProjectRules) => r.policies.map((p) => p.name);

/** A loader whose answers the test releases by hand, counting loads. */
function manualLoader() {
  const pending: { project: ProjectRef; resolve: (r: ProjectRules) => void; reject: (e: Error) => void }[] = [];
  return {
    pending,
    load: (project: ProjectRef) =>
      new Promise<ProjectRules>((resolve, reject) => pending.push({ project, resolve, reject })),
  };
}

describe("policy cache", () => {
  it("serves a project from one load until invalidated", async () => {
    let loads = 0;
    const cache = createPolicyCache({ load: async (p) => rules([policy(`v${++loads}`, p)]) });
    expect(names(await cache.get(web))).toEqual(["v1"]);
    expect(names(await cache.get(web))).toEqual(["v1"]);
    cache.invalidate(web);
    expect(names(await cache.get(web))).toEqual(["v2"]);
    expect(loads).toBe(2);
  });

  it("shares one load between concurrent misses", async () => {
    const loader = manualLoader();
    const cache = createPolicyCache({ load: loader.load });
    const first = cache.get(web);
    const second = cache.get(web);
    expect(loader.pending).toHaveLength(1);
    loader.pending[0]?.resolve(rules([policy("only")]));
    expect(await first).toBe(await second);
  });

  it("never keeps a load that an invalidation overtook", async () => {
    const loader = manualLoader();
    const cache = createPolicyCache({ load: loader.load });
    const stale = cache.get(web);
    cache.invalidate(web); // a policy changed while the old rows were being read
    const fresh = cache.get(web);
    expect(loader.pending).toHaveLength(2);
    loader.pending[0]?.resolve(rules([policy("old")]));
    loader.pending[1]?.resolve(rules([policy("new")]));
    expect(names(await stale)).toEqual(["old"]);
    expect(names(await fresh)).toEqual(["new"]);
    expect(names(await cache.get(web))).toEqual(["new"]);
    expect(loader.pending).toHaveLength(2);
  });

  it("forgets a failed load so the next call retries", async () => {
    let calls = 0;
    const cache = createPolicyCache({
      load: async () => {
        if (++calls === 1) throw new Error("connection refused");
        return rules([policy("ok")]);
      },
    });
    await expect(cache.get(web)).rejects.toThrow("connection refused");
    expect(cache.size).toBe(0);
    expect(names(await cache.get(web))).toEqual(["ok"]);
  });

  it("evicts the least recently used project beyond maxProjects", async () => {
    const loaded: string[] = [];
    const cache = createPolicyCache({
      maxProjects: 2,
      load: async (p) => {
        loaded.push(p.project);
        return rules([]);
      },
    });
    const ops: ProjectRef = { organisation: "acme", project: "ops" };
    await cache.get(web);
    await cache.get(api);
    await cache.get(web); // web is now the most recent
    await cache.get(ops); // evicts api
    expect(cache.size).toBe(2);
    await cache.get(web);
    await cache.get(api);
    expect(loaded).toEqual(["web", "api", "ops", "api"]);
  });

  it("caches a project's declared environments with its policies, and drops both together", async () => {
    let loads = 0;
    const cache = createPolicyCache({
      load: async () => (++loads === 1 ? rules([policy("gate")], ["dev", "prod"]) : rules([policy("gate")])),
    });
    expect((await cache.get(web)).environments).toEqual(["dev", "prod"]);
    expect((await cache.get(web)).environments).toEqual(["dev", "prod"]);
    cache.invalidate(web);
    expect(await cache.get(web)).toMatchObject({ environments: undefined });
    expect(loads).toBe(2);
  });

  it("reloads an entry older than ttlMs", async () => {
    let clock = 0;
    let loads = 0;
    const cache = createPolicyCache({ ttlMs: 1_000, now: () => clock, load: async () => rules([policy(`v${++loads}`)]) });
    await cache.get(web);
    clock = 999;
    expect(names(await cache.get(web))).toEqual(["v1"]);
    clock = 1_000;
    expect(names(await cache.get(web))).toEqual(["v2"]);
  });

  it("invalidates the project named by a change notification, everything on an unreadable one", async () => {
    let notify: (payload: string) => void = () => {};
    let channel = "";
    const source = {
      async listen(ch: string, cb: (payload: string) => void) {
        channel = ch;
        notify = cb;
        return async () => {};
      },
    };
    const cache = createPolicyCache({ load: async () => rules([]) });
    await invalidateOnPolicyChange(source, cache);
    expect(channel).toBe(POLICY_CHANGED_CHANNEL);
    await cache.get(web);
    await cache.get(api);
    notify(JSON.stringify(["acme", "web"]));
    expect(cache.size).toBe(1);
    await cache.get(web);
    notify("not json");
    expect(cache.size).toBe(0);
  });
});
