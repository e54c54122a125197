import { describe, expect, it } from "vitest";
import { createAccess } from "../../src/auth/access.js";
import type { Caller } from "../../src/auth/caller.js";
import { type Action, authorize } from "../../src/auth/permissions.js";
import { callerFromClaims } from "../../src/auth/token-verifier.js";
import { PermissionDeniedError, UnauthenticatedError } from "../../src/errors.js";

describe("callerFromClaims", () => {
  it("maps sub, preferred_username, org_roles and actor_type", () => {
    const c = callerFromClaims({
      sub: "u1",
      preferred_username: "alice",
      name: "Alice A.",
      org_roles: { acme: "admin", beta: "member" },
      actor_type: "service",
    });
    expect(c.userId).toBe("u1");
    expect(c.username).toBe("alice");
    expect(c.actorType).toBe("service");
    expect([...c.orgRoles]).toEqual([
      ["acme", "admin"],
      ["beta", "member"],
    ]);
  });

  it("falls back from preferred_username to name to sub", () => {
    expect(callerFromClaims({ sub: "u1", name: "Alice" }).username).toBe("Alice");
    expect(callerFromClaims({ sub: "u1", preferred_username: "", name: "" }).username).toBe("u1");
  });

  it("defaults actor_type to user, and anything but 'service' is a user", () => {
    expect(callerFromClaims({ sub: "u1" }).actorType).toBe("user");
    expect(callerFromClaims({ sub: "u1", actor_type: "root" }).actorType).toBe("user");
  });

  it("has no roles when org_roles is absent", () => {
    expect(callerFromClaims({ sub: "u1" }).orgRoles.size).toBe(0);
  });

  it("keeps the ladder's roles and ignores every other role string", () => {
    const c = callerFromClaims({
      sub: "u1",
      org_roles: { acme: "owner", beta: 1, gamma: "member", delta: "viewer", eps: "maintainer", zeta: "Admin" },
    });
    expect([...c.orgRoles]).toEqual([
      ["gamma", "member"],
      ["delta", "viewer"],
      ["eps", "maintainer"],
    ]);
  });

  it("rejects a token without a subject", () => {
    expect(() => callerFromClaims({ org_roles: {} })).toThrow(new UnauthenticatedError("token has no subject"));
    expect(() => callerFromClaims({ sub: "" })).toThrow(UnauthenticatedError);
  });

  it.each([["admin"], [["acme"]], [null]])("rejects org_roles %j that is not an object", (roles) => {
    expect(() => callerFromClaims({ sub: "u1", org_roles: roles })).toThrow(
      new UnauthenticatedError("token claim org_roles must be an object"),
    );
  });
});

describe("authorize", () => {
  const caller = (role: "member" | "admin" | undefined, service = false): Caller => ({
    userId: "u1",
    username: "u1",
    actorType: service ? "service" : "user",
    orgRoles: new Map(role === undefined ? [] : [["acme", role]]),
    idpGroups: [],
  });
  const access = (c: Caller) => createAccess(c, { clock: { now: () => new Date() } });
  const allowed = async (c: Caller, action: Action) => {
    try {
      await authorize(access(c), "acme", action);
      return true;
    } catch (err) {
      expect(err).toBeInstanceOf(PermissionDeniedError);
      return false;
    }
  };

  it.each<[Action, boolean, boolean, boolean, boolean]>([
    // action, member, admin, service(member), service(admin)
    ["policy.read", true, true, true, true],
    ["policy.write", false, true, false, true],
    ["policy.evaluate", true, true, true, true],
    ["intent.register", true, true, true, true],
    ["intent.read", true, true, true, true],
    ["deployment.record", false, true, true, true],
    ["approval.vote", true, true, false, false],
    ["approval.read", true, true, true, true],
  ])("%s: member %s, admin %s, service %s / %s", async (action, member, admin, service, serviceAdmin) => {
    expect(await allowed(caller("member"), action)).toBe(member);
    expect(await allowed(caller("admin"), action)).toBe(admin);
    expect(await allowed(caller("member", true), action)).toBe(service);
    expect(await allowed(caller("admin", true), action)).toBe(serviceAdmin);
  });

  it("denies every action without a role in the organisation, naming it", async () => {
    await expect(authorize(access(caller(undefined)), "acme", "policy.read")).rejects.toThrow(
      new PermissionDeniedError("caller u1 has no role in organisation acme"),
    );
  });

  it("names the role and action when denied", async () => {
    await expect(authorize(access(caller("member")), "acme", "policy.write")).rejects.toThrow(
      new PermissionDeniedError("member u1 may not policy.write in organisation acme"),
    );
  });
});
