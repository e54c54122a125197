import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { ManualClock, startTestServer, type TestServer, token } from "./support/server.js";

// The CLI creates, lists and evaluates Forest's supersede-pending policy.

const clock = new ManualClock();
let server: TestServer;
let env: Record<string, string>;
const P = ["--project", "acme/cli-supersede"];

beforeAll(async () => {
  await ensureBuilt();
  server = await startTestServer({ clock });
  env = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await token({ sub: "ada", orgs: { acme: "admin" } }) };
}, 240_000);
afterAll(() => server?.stop());

describe("releasegate policy … supersede-pending", () => {
  it("creates one with --type supersede-pending --same-branch-only and lists it", async () => {
    const created = await runCli(
      ["-o", "json", "policy", "create", "one-pending", ...P, "--type", "supersede-pending", "--target", "prod", "--same-branch-only"],
      env,
    );
    expect(created).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(created.stdout)).toMatchObject({
      name: "one-pending",
      policyType: "POLICY_TYPE_SUPERSEDE_PENDING",
      supersedePending: { targetEnvironment: "prod", sameBranchOnly: true },
    });
    const list = await runCli(["policy", "list", ...P], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/one-pending\s+supersede_pending\s+true\s+prod: newer release supersedes \(same branch only\)/);
  });

  it("evaluate shows an older intent blocked as superseded (exit 1)", async () => {
    const first = await runCli(["intent", "register", ...P, "--branch", "main"], env);
    expect(first.code).toBe(0);
    const old = first.stdout.trim();
    // The server clock moves on: the second registration is the newer one.
    clock.advance(1);
    const second = await runCli(["intent", "register", ...P, "--branch", "main"], env);
    const newer = second.stdout.trim();
    const evaluated = await runCli(["policy", "evaluate", ...P, "--env", "prod", "--intent", old], env);
    expect(evaluated.code).toBe(1);
    expect(evaluated.stdout).toContain(`superseded by ${newer} (policy 'one-pending')`);
    const newest = await runCli(["policy", "evaluate", ...P, "--env", "prod", "--intent", newer], env);
    expect(newest.code).toBe(0);
  });
});
