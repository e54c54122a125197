import { Code } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callerFromClaims } from "../src/auth/token-verifier.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { UnauthenticatedError } from "../src/errors.js";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { expectRpcError } from "./support/rpc-error.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer, token } from "./support/server.js";

// Identity-provider groups from a token claim (RELEASEGATE_JWT_GROUPS_CLAIM,
// default `groups`): an array of strings, or the token is refused naming the claim.

const project = { organisation: "acme", project: "web" };

async function signed(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT({ org_roles: { acme: "member" }, ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("gina")
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(TEST_JWT_SECRET));
}

describe("the groups claim on the Caller", () => {
  it("maps an array of strings to idpGroups, duplicates once, absent to none", () => {
    expect(callerFromClaims({ sub: "u1", groups: ["sre", "security", "sre"] }).idpGroups).toEqual(["sre", "security"]);
    expect(callerFromClaims({ sub: "u1" }).idpGroups).toEqual([]);
    expect(callerFromClaims({ sub: "u1", teams: ["sre"] }, "teams").idpGroups).toEqual(["sre"]);
    expect(callerFromClaims({ sub: "u1", groups: ["sre"] }, "teams").idpGroups).toEqual([]);
  });

  it.each([["sre"], [[1]], [{ sre: true }], [null]])("refuses a groups claim %j that is not an array of strings", (v) => {
    expect(() => callerFromClaims({ sub: "u1", groups: v })).toThrow(
      new UnauthenticatedError("token claim groups must be an array of strings (identity-provider groups)"),
    );
  });

  it("reads RELEASEGATE_JWT_GROUPS_CLAIM, default groups, and refuses a malformed name", () => {
    expect(loadConfig({}).jwt.groupsClaim).toBe("groups");
    expect(loadConfig({ RELEASEGATE_JWT_GROUPS_CLAIM: "https://example.com/groups" }).jwt.groupsClaim).toBe(
      "https://example.com/groups",
    );
    expect(() => loadConfig({ RELEASEGATE_JWT_GROUPS_CLAIM: "has space" })).toThrow(ConfigError);
  });
});

describe("tokens with a groups claim over the wire", () => {
  let server: TestServer;
  let custom: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    custom = await startTestServer({ env: { RELEASEGATE_JWT_GROUPS_CLAIM: "idp_groups" } });
  });
  afterAll(async () => {
    await server?.stop();
    await custom?.stop();
  });

  it("accepts a token whose groups claim is an array of strings", async () => {
    const tok = await token({ sub: "gina", orgs: { acme: "member" }, groups: ["sre", "security"] });
    const res = await server.client(PolicyService, tok).listPolicies({ project });
    expect(res.policies).toEqual([]);
  });

  it("refuses a token whose groups claim is not an array of strings, UNAUTHENTICATED naming the claim", async () => {
    await expectRpcError(
      server.client(PolicyService, await signed({ groups: "sre" })).listPolicies({ project }),
      Code.Unauthenticated,
      "token claim groups must be an array of strings (identity-provider groups)",
    );
  });

  it("reads the configured claim instead: idp_groups is checked, groups is ignored", async () => {
    const ignored = await signed({ groups: "not-an-array" });
    expect((await custom.client(PolicyService, ignored).listPolicies({ project })).policies).toEqual([]);
    await expectRpcError(
      custom.client(PolicyService, await signed({ idp_groups: [1, 2] })).listPolicies({ project }),
      Code.Unauthenticated,
      "token claim idp_groups must be an array of strings (identity-provider groups)",
    );
  });
});
