import { describe, expect, it } from "vitest";
import type { RoleGrant, Scope } from "../../src/approver/directory.js";
import { effectiveRole } from "../../src/approver/effective-role.js";
import { isActiveAt, scopeCovers } from "../../src/approver/scope.js";
import { compareRoles, maxRole, parseRole, ROLES, roleAtLeast } from "../../src/auth/roles.js";

describe("the role ladder", () => {
  it("orders viewer < member < maintainer < admin", () => {
    expect(ROLES).toEqual(["viewer", "member", "maintainer", "admin"]);
    expect(compareRoles("viewer", "member")).toBeLessThan(0);
    expect(compareRoles("admin", "maintainer")).toBeGreaterThan(0);
    expect(roleAtLeast("maintainer", "member")).toBe(true);
    expect(roleAtLeast("member", "maintainer")).toBe(false);
    expect(roleAtLeast(undefined, "viewer")).toBe(false);
    expect(maxRole(undefined, "viewer")).toBe("viewer");
    expect(maxRole("admin", "member")).toBe("admin");
  });

  it.each([["owner"], ["Admin"], [""], [3], [null], [undefined], ["__proto__"], ["toString"]])(
    "parses %j as no role",
    (v) => expect(parseRole(v)).toBeUndefined(),
  );
});

describe("scope cover", () => {
  const org: Scope = { kind: "organisation", id: "" };
  const project: Scope = { kind: "project", id: "web" };
  const env: Scope = { kind: "environment", id: "web/prod" };
  it.each([
    [org, {}, true],
    [org, { project: "api", environment: "dev" }, true],
    [project, { project: "web" }, true],
    [project, { project: "web", environment: "prod" }, true],
    [project, { project: "api" }, false],
    [project, {}, false],
    [env, { project: "web", environment: "prod" }, true],
    [env, { project: "web", environment: "staging" }, false],
    [env, { project: "web" }, false],
    [env, { project: "api", environment: "prod" }, false],
  ] as const)("%j covers %j: %s", (scope, at, covers) => {
    expect(scopeCovers(scope, at)).toBe(covers);
  });

  it("counts something expiring until just before expires_at, not at it", () => {
    const expiresAt = new Date("2026-01-01T00:00:00Z");
    expect(isActiveAt({ expiresAt }, new Date(expiresAt.getTime() - 1))).toBe(true);
    expect(isActiveAt({ expiresAt }, expiresAt)).toBe(false);
    expect(isActiveAt({}, new Date(8.64e15))).toBe(true);
  });
});

describe("effective role", () => {
  const now = new Date("2026-06-01T00:00:00Z");
  const grant = (role: RoleGrant["role"], scope: Scope, extra: Partial<RoleGrant> = {}): RoleGrant => ({
    id: "g",
    organisation: "acme",
    userId: "bob",
    role,
    scope,
    grantedAt: now,
    grantedBy: "ada",
    ...extra,
  });
  const at = { project: "web", environment: "prod" };
  const role = (baseRole: RoleGrant["role"] | undefined, grants: RoleGrant[], where = at) =>
    effectiveRole({ baseRole, grants, organisation: "acme", at: where, now });

  it("is the highest of the base role and every covering, active grant of the organisation", () => {
    expect(role("member", [])).toBe("member");
    expect(role("member", [grant("admin", { kind: "project", id: "web" })])).toBe("admin");
    expect(role("member", [grant("admin", { kind: "project", id: "api" })])).toBe("member");
    expect(role("admin", [grant("viewer", { kind: "organisation", id: "" })])).toBe("admin");
    expect(role(undefined, [grant("viewer", { kind: "environment", id: "web/prod" })])).toBe("viewer");
    expect(role(undefined, [])).toBeUndefined();
  });

  it("ignores expired grants and grants of other organisations", () => {
    const org: Scope = { kind: "organisation", id: "" };
    expect(role("member", [grant("admin", org, { expiresAt: now })])).toBe("member");
    expect(role("member", [grant("admin", org, { expiresAt: new Date(now.getTime() + 1) })])).toBe("admin");
    expect(role("member", [grant("admin", org, { organisation: "globex" })])).toBe("member");
  });
});
