import type { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../src/cli/program.js";
import { ensureBuilt } from "./support/build.js";
import { runCli, startCli } from "./support/cli.js";
import { createPostgresDatabase } from "./support/database.js";
import { waitFor } from "./support/grpc-js.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer, token } from "./support/server.js";

let server: TestServer;
let env: Record<string, string>;
let bobEnv: Record<string, string>;
const P = ["--project", "acme/cli"];

beforeAll(async () => {
  await ensureBuilt();
  server = await startTestServer();
  env = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await token({ sub: "ada", orgs: { acme: "admin" } }) };
  bobEnv = { ...env, RELEASEGATE_TOKEN: await token({ sub: "bob", name: "Bob", orgs: { acme: "member" } }) };
}, 240_000);
afterAll(() => server?.stop());

/**
 * A vote on an approved (final) request is FAILED_PRECONDITION (issue 13),
 * and asking again returns the approved request: a test that votes again
 * after a pass does so on a release of its own.
 */
async function freshIntent(): Promise<string> {
  const registered = await runCli(["intent", "register", ...P, "--branch", "main", "--version", "1.2.4"], env);
  expect(registered.code, registered.stderr).toBe(0);
  return registered.stdout.trim();
}

describe("releasegate CLI against a running server", () => {
  let intentId = "";

  it("token mints a token the server accepts (RELEASEGATE_JWT_SECRET)", async () => {
    const minted = await runCli(["token", "--sub", "pipeline", "--org", "acme=member", "--service"], {
      RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
    });
    expect(minted.code).toBe(0);
    const jwt = minted.stdout.trim();
    expect(jwt.split(".")).toHaveLength(3);
    const list = await runCli(["policy", "list", ...P], { ...env, RELEASEGATE_TOKEN: jwt });
    expect(list).toMatchObject({ code: 0, stderr: "" });
  });

  it("policy create prints the policy (json) and list shows it (table)", async () => {
    const created = await runCli(
      ["-o", "json", "policy", "create", "two-eyes", ...P, "--type", "approval", "--target", "prod", "--required", "1"],
      env,
    );
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({
      name: "two-eyes",
      enabled: true,
      policyType: "POLICY_TYPE_EXTERNAL_APPROVAL",
      externalApproval: { targetEnvironment: "prod", requiredApprovals: 1 },
    });
    const soak = await runCli(
      ["policy", "create", "soak", ...P, "--type", "soak", "--source", "staging", "--target", "qa", "--duration", "30m"],
      env,
    );
    expect(soak.code).toBe(0);
    const list = await runCli(["policy", "list", ...P], env);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+ENABLED\s+CONFIG\s+UPDATED$/);
    expect(list.stdout).toMatch(/two-eyes\s+external_approval\s+true\s+prod: 1 approval\(s\)/);
    expect(list.stdout).toMatch(/soak\s+soak_time\s+true\s+staging → qa for 1800s/);
  });

  it("intent register prints the id; evaluate exits 1 while approval is missing", async () => {
    const registered = await runCli(["intent", "register", ...P, "--branch", "main", "--version", "1.2.3"], env);
    expect(registered.code).toBe(0);
    intentId = registered.stdout.trim();
    expect(intentId).toMatch(/^[0-9a-f-]{36}$/);
    const evaluated = await runCli(["policy", "evaluate", ...P, "--env", "prod", "--intent", intentId], env);
    expect(evaluated.code).toBe(1);
    expect(evaluated.stdout).toMatch(/two-eyes\s+external_approval\s+BLOCK/);
    expect(evaluated.stdout).toContain("blocked");
  });

  it("approve by a reviewer, state shows 1/1, evaluate then exits 0", async () => {
    const approved = await runCli(["approve", ...P, "--intent", intentId, "--env", "prod", "-m", "lgtm"], bobEnv);
    expect(approved.stderr).toBe("");
    expect(approved.code).toBe(0);
    expect(approved.stdout).toMatch(/APPROVALS\s+1\/1/);
    const state = await runCli(["-o", "json", "state", ...P, "--intent", intentId, "--env", "prod"], env);
    expect(JSON.parse(state.stdout)).toMatchObject({
      state: { requiredApprovals: 1, currentApprovals: 1, decisions: [{ userId: "bob", decision: "approved" }] },
    });
    const evaluated = await runCli(["-o", "json", "policy", "evaluate", ...P, "--env", "prod", "--intent", intentId], env);
    expect(evaluated.code).toBe(0);
    expect(JSON.parse(evaluated.stdout)).toMatchObject({ allPassed: true });
  });

  it("reject, then approve: history lists both votes in order", async () => {
    // bob's approval made the first release's request approved (final): this one starts afresh.
    intentId = await freshIntent();
    const rejected = await runCli(["reject", ...P, "--intent", intentId, "--env", "prod", "-m", "found a bug"], bobEnv);
    expect(rejected.stderr).toBe("");
    expect(rejected.code).toBe(0);
    // A rejection is a vote (reject_blocks off): the request stays pending, and bob changes his mind.
    const approved = await runCli(["approve", ...P, "--intent", intentId, "--env", "prod", "-m", "fixed"], bobEnv);
    expect(approved).toMatchObject({ code: 0, stderr: "" });
    const history = await runCli(["-o", "json", "history", ...P, "--intent", intentId], env);
    expect(history.code).toBe(0);
    const entries = history.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // The history also has the requests' lifecycle rows (decision_kind request_<state>, issue 13).
    const isRequestRow = (e: Record<string, unknown>) => String(e.decisionKind).startsWith("request_");
    expect(entries.filter((e) => !isRequestRow(e)).map((e) => [e.userId, e.decision])).toEqual([
      ["bob", "rejected"],
      ["bob", "approved"],
    ]);
    expect(entries.filter(isRequestRow).map((e) => [e.decisionKind, e.decision])).toEqual([
      ["request_pending", "pending"],
      ["request_approved", "approved"],
    ]);
    const table = await runCli(["history", ...P, "--intent", intentId, "--env", "prod"], env);
    expect(table.stdout).toMatch(/^SEQ\s+INTENT\s+ENV\s+USER/);
  });

  it("deploy record prints the deployment", async () => {
    const recorded = await runCli(["-o", "json", "deploy", "record", ...P, "--env", "staging", "--intent", intentId], env);
    expect(recorded.stderr).toBe("");
    expect(recorded.code).toBe(0);
    expect(JSON.parse(recorded.stdout)).toMatchObject({
      deployment: { environment: "staging", releaseIntentId: intentId, status: "DEPLOYMENT_STATUS_SUCCEEDED" },
    });
  });

  it("watch streams a decision as it is made and exits 0 on SIGINT", async () => {
    const watch = startCli(["-o", "json", "watch", ...P, "--env", "prod"], env);
    await waitFor(() => watch.out.stdout.includes('"subscribed":true'), 15_000, "the subscription");
    // A release of its own, so its request is pending: bob's approval decides it.
    intentId = await freshIntent();
    const approved = await runCli(["approve", ...P, "--intent", intentId, "--env", "prod"], bobEnv);
    expect(approved).toMatchObject({ code: 0, stderr: "" });
    const votes = () =>
      watch.out.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { event?: Record<string, unknown> })
        .filter((m) => m.event?.kind === "approval.decided");
    // The approval also ends the request (approval.approved); the vote is the approval.decided event.
    await waitFor(() => votes().some((m) => m.event?.decision === "approved"), 15_000, "the approval event");
    const event = votes().at(-1) as { event: Record<string, unknown> };
    expect(event.event).toMatchObject({
      releaseIntentId: intentId,
      voterUserId: "bob",
      targetEnvironment: "prod",
      decision: "approved",
    });
    watch.child.kill("SIGINT");
    expect(await watch.exited).toBe(0);

    // While nobody watches, bob rejects another release; --resume-after replays it.
    intentId = await freshIntent();
    const rejected = await runCli(["reject", ...P, "--intent", intentId, "--env", "prod"], bobEnv);
    expect(rejected).toMatchObject({ code: 0, stderr: "" });
    const resumed = startCli(["-o", "json", "watch", ...P, "--env", "prod", "--resume-after", String(event.event.eventId)], env);
    await waitFor(() => resumed.out.stdout.includes('"decision":"rejected"'), 15_000, "the replayed rejection");
    resumed.child.kill("SIGINT");
    expect(await resumed.exited).toBe(0);
    const replayed = resumed.out.stdout.trim().split("\n").map((l) => JSON.parse(l) as { event?: Record<string, unknown> });
    // At least once: votes from shortly before the resume point may come again; the rejection comes last.
    expect(
      replayed.filter((m) => m.event?.releaseIntentId === intentId && m.event?.kind === "approval.decided").at(-1)?.event,
    ).toMatchObject({
      voterUserId: "bob",
      decision: "rejected",
    });
    const last = await runCli(["approve", ...P, "--intent", intentId, "--env", "prod"], bobEnv);
    expect(last).toMatchObject({ code: 0, stderr: "" });
  });

  it("policy update --disable and delete", async () => {
    const updated = await runCli(["-o", "json", "policy", "update", "two-eyes", ...P, "--disable"], env);
    expect(JSON.parse(updated.stdout)).toMatchObject({ name: "two-eyes", enabled: false });
    const deleted = await runCli(["policy", "delete", "two-eyes", ...P], env);
    expect(deleted).toMatchObject({ code: 0, stdout: "deleted two-eyes\n" });
    const list = await runCli(["-o", "json", "policy", "list", ...P], env);
    expect((JSON.parse(list.stdout) as { policies: { name: string }[] }).policies.map((p) => p.name)).toEqual(["soak"]);
  });
});

describe("releasegate environments", () => {
  const E = ["--project", "acme/cli-envs"];

  it("set declares the names folded and in order; get shows them as a table and as JSON", async () => {
    const set = await runCli(["-o", "json", "environments", "set", ...E, "dev", "Staging", "prod"], env);
    expect(set.stderr).toBe("");
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({ environments: ["dev", "staging", "prod"] });
    const table = await runCli(["environments", "get", ...E], env);
    expect(table).toMatchObject({ code: 0, stdout: "ENVIRONMENT\ndev\nstaging\nprod\n" });
    const json = await runCli(["-o", "json", "environments", "get", ...E], bobEnv);
    expect(JSON.parse(json.stdout)).toEqual({ environments: ["dev", "staging", "prod"], declared: true });
  });

  it("evaluate of an undeclared environment exits 1 with the reason", async () => {
    const res = await runCli(["policy", "evaluate", ...E, "--env", "prdo"], env);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(
      /declared-environments\s+unspecified\s+BLOCK\s+unknown environment prdo for acme\/cli-envs; declared: dev, staging, prod/,
    );
  });

  it("a member may not set them: exit 3 PERMISSION_DENIED", async () => {
    const res = await runCli(["environments", "set", ...E, "dev"], bobEnv);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/^error: PERMISSION_DENIED: member bob may not environment.write in organisation acme/);
  });

  it("a look-alike name exits 3 INVALID_ARGUMENT naming the list entry", async () => {
    const res = await runCli(["environments", "set", ...E, "dev", "prod "], env);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/^error: INVALID_ARGUMENT: environments\[1\]: "prod " is not a valid environment name/);
  });

  it("clear removes the declaration", async () => {
    const cleared = await runCli(["environments", "clear", ...E], env);
    expect(cleared).toMatchObject({ code: 0, stdout: "declaration removed\n" });
    const json = await runCli(["-o", "json", "environments", "get", ...E], env);
    expect(JSON.parse(json.stdout)).toEqual({ environments: [], declared: false });
    const table = await runCli(["environments", "get", ...E], env);
    expect(table.stdout).toBe("no declared environments (every name is accepted)\n");
  });
});

describe("releasegate groups and grants", () => {
  const O = ["--org", "acme"];

  it("groups create, add-member (scoped, expiring) and list show the group and its members", async () => {
    const created = await runCli(["groups", "create", "cli-sre", ...O, "--idp-group", "okta-sre"], env);
    expect(created.stderr).toBe("");
    expect(created.stdout).toMatch(/^GROUP\s+IDP GROUP\s+MEMBER\s+SCOPE\s+EXPIRES\ncli-sre\s+okta-sre\s+-/);
    const added = await runCli(
      ["groups", "add-member", "cli-sre", "u-dana", ...O, "--scope", "environment", "--scope-id", "web/prod", "--expires-at", "2099-01-01T00:00:00Z"],
      env,
    );
    expect(added).toMatchObject({ code: 0, stderr: "" });
    const list = await runCli(["-o", "json", "groups", "list", ...O], bobEnv);
    const group = (JSON.parse(list.stdout) as { groups: { name: string; members: unknown[] }[] }).groups.find(
      (g) => g.name === "cli-sre",
    );
    expect(group?.members).toMatchObject([
      { userId: "u-dana", scope: "environment", scopeId: "web/prod", expiresAt: "2099-01-01T00:00:00.000Z", active: true },
    ]);
    const table = await runCli(["groups", "list", ...O], env);
    expect(table.stdout).toMatch(/cli-sre\s+okta-sre\s+u-dana\s+environment web\/prod\s+2099-01-01T00:00:00\.000Z/);
    const removed = await runCli(["groups", "remove-member", "cli-sre", "u-dana", ...O], env);
    expect(removed).toMatchObject({ code: 0, stdout: "removed u-dana from cli-sre\n" });
    const deleted = await runCli(["groups", "delete", "cli-sre", ...O], env);
    expect(deleted).toMatchObject({ code: 0, stdout: "deleted group cli-sre\n" });
  });

  it("grants add, list and revoke a scoped role", async () => {
    const added = await runCli(
      ["-o", "json", "grants", "add", "u-erik", "maintainer", ...O, "--scope", "project", "--scope-id", "web"],
      env,
    );
    expect(added.stderr).toBe("");
    const grant = (JSON.parse(added.stdout) as { grant: { id: string } }).grant;
    expect(grant).toMatchObject({ userId: "u-erik", role: "maintainer", scope: "project", scopeId: "web", active: true });
    const list = await runCli(["grants", "list", ...O, "--user", "u-erik"], bobEnv);
    expect(list.stdout).toMatch(/^ID\s+USER\s+ROLE\s+SCOPE\s+EXPIRES\s+GRANTED BY\n/);
    expect(list.stdout).toContain(grant.id);
    expect(list.stdout).toMatch(/u-erik\s+maintainer\s+project web\s+-\s+ada/);
    const revoked = await runCli(["grants", "revoke", grant.id, ...O], env);
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked grant ${grant.id}\n` });
  });

  it("a member may not grant: exit 3 PERMISSION_DENIED; a role outside the ladder: exit 3 INVALID_ARGUMENT", async () => {
    const denied = await runCli(["grants", "add", "u-x", "admin", ...O], bobEnv);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toBe("error: PERMISSION_DENIED: member bob may not directory.write in organisation acme\n");
    const bad = await runCli(["grants", "add", "u-x", "owner", ...O], env);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/^error: INVALID_ARGUMENT: role: "owner" is not a role: use one of viewer, member, maintainer, admin/);
  });
});

describe("releasegate break-glass", () => {
  const B = ["--project", "acme/cli-glass"];

  it("opens the approval gate of the intent with the reason; a member exits 3 PERMISSION_DENIED; a short reason exits 3", async () => {
    await runCli(["policy", "create", "gate", ...B, "--type", "approval", "--target", "prod", "--required", "2"], env);
    const intent = (await runCli(["intent", "register", ...B, "--branch", "main", "--version", "1"], env)).stdout.trim();
    const reason = "incident 7: checkout is down";
    const denied = await runCli(["break-glass", ...B, "--intent", intent, "--env", "prod", "--reason", reason], bobEnv);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toMatch(/^error: PERMISSION_DENIED: member bob may not approval.break_glass/);
    const short = await runCli(["break-glass", ...B, "--intent", intent, "--env", "prod", "--reason", "now"], env);
    expect(short.code).toBe(3);
    expect(short.stderr).toMatch(/^error: INVALID_ARGUMENT: reason: a break-glass needs a reason/);
    const broke = await runCli(["-o", "json", "break-glass", ...B, "--intent", intent, "--env", "prod", "--reason", reason], env);
    expect(broke.stderr).toBe("");
    expect(broke.code).toBe(0);
    expect(JSON.parse(broke.stdout)).toMatchObject({ eventId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const evaluated = await runCli(["policy", "evaluate", ...B, "--env", "prod", "--intent", intent], env);
    expect(evaluated.code).toBe(0);
    expect(evaluated.stdout).toMatch(/gate\s+external_approval\s+pass\s+break-glass by ada at \S+: incident 7: checkout is down/);
  });
});

describe("CLI errors and exit codes", () => {
  it("a server error exits 3 with the code and message on stderr", async () => {
    const res = await runCli(["policy", "delete", "nope", ...P], env);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/^error: NOT_FOUND: .*nope/);
  });

  it("no token exits 4 before calling, saying how to sign in", async () => {
    const res = await runCli(["policy", "list", ...P], { ...env, RELEASEGATE_TOKEN: "" });
    expect(res.code).toBe(4);
    expect(res.stderr).toBe(
      `error: not signed in to ${server.baseUrl}: run \`releasegate login --server ${server.baseUrl}\` (or set RELEASEGATE_TOKEN)\n`,
    );
  });

  it("a missing required option exits 2 naming it", async () => {
    const res = await runCli(["policy", "evaluate", ...P], env);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("error: required option '-e, --env <env>' not specified");
  });

  it("a malformed --project exits 2", async () => {
    const res = await runCli(["policy", "list", "--project", "acme"], env);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("expected ORGANISATION/PROJECT, e.g. acme/web");
  });

  it.each([[[]], [["policy", "evaluate"]], [["watch"]]])("releasegate %j --help prints usage and exits 0", async (command) => {
    const res = await runCli([...command, "--help"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`Usage: releasegate${command.length > 0 ? ` ${command.join(" ")}` : ""}`);
  });

  it("every command and subcommand has a description and --help", () => {
    const all: Command[] = [];
    const walk = (cmd: Command) => {
      for (const sub of cmd.commands) {
        all.push(sub);
        walk(sub);
      }
    };
    walk(buildProgram());
    expect(all.map((c) => c.name())).toEqual(
      expect.arrayContaining(["serve", "migrate", "token", "policy", "create", "list", "update", "delete", "evaluate"]),
    );
    expect(all.map((c) => c.name())).toEqual(
      expect.arrayContaining(["login", "logout", "whoami", "approvers", "break-glass"]),
    );
    expect(all.map((c) => c.name())).toEqual(
      expect.arrayContaining(["intent", "register", "deploy", "record", "approve", "reject", "state", "history", "watch"]),
    );
    expect(all.map((c) => c.name())).toEqual(expect.arrayContaining(["environments", "set", "get", "clear"]));
    expect(all.map((c) => c.name())).toEqual(
      expect.arrayContaining(["groups", "add-member", "remove-member", "grants", "add", "revoke"]),
    );
    for (const cmd of all) {
      expect(cmd.description(), cmd.name()).not.toBe("");
      expect(cmd.helpInformation(), cmd.name()).toMatch(/^Usage: releasegate .*\n[\s\S]*-h, --help\s+display help for command/);
    }
  });
});

describe("releasegate migrate", () => {
  it("applies the migrations to an empty Postgres database, then reports it up to date", async () => {
    const database = await createPostgresDatabase();
    try {
      const first = await runCli(["migrate"], { DATABASE_URL: database.url });
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/^applied 0001_policies_intents_deployments\n/);
      const second = await runCli(["migrate"], { DATABASE_URL: database.url });
      expect(second).toMatchObject({ code: 0, stdout: "database is up to date\n" });
    } finally {
      await database.drop();
    }
  });

  it("names the variable of a bad configuration and exits 2", async () => {
    const res = await runCli(["migrate"], { DATABASE_URL: "mysql://nope" });
    expect(res.code).toBe(2);
    expect(res.stderr).toBe("config error: DATABASE_URL: must be a postgres:// or postgresql:// URL\n");
  });
});
