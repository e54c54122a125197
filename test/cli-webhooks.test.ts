import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { ensureBuilt } from "./support/build.js";
import { runCli } from "./support/cli.js";
import { testDatabaseKind } from "./support/database.js";
import { startTestServer, type TestServer, token } from "./support/server.js";
import { WebhookReceiver } from "./support/webhook-receiver.js";

const SECRET = "cli-webhook-secret-0123";
const project = { organisation: "acme", project: "cli" };
const O = ["--org", "acme"];
let server: TestServer;
let env: Record<string, string>;
let bobEnv: Record<string, string>;
const receiver = new WebhookReceiver(SECRET);

beforeAll(async () => {
  await ensureBuilt();
  await receiver.up();
  server = await startTestServer({ env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true" } });
  env = { RELEASEGATE_SERVER: server.baseUrl, RELEASEGATE_TOKEN: await token({ sub: "ada", orgs: { acme: "admin" } }) };
  bobEnv = { ...env, RELEASEGATE_TOKEN: await token({ sub: "bob", name: "Bob", orgs: { acme: "member" } }) };
}, 240_000);
afterAll(async () => {
  await server?.stop();
  await receiver.down();
});

describe(`releasegate webhooks on ${testDatabaseKind()}`, () => {
  it("create, list, deliveries, disable and delete a subscription", { timeout: 60_000 }, async () => {
    const created = await runCli(
      ["-o", "json", "webhooks", "create", receiver.url, ...O, "--kinds", "approval.decided", "--project", "cli"],
      { ...env, RELEASEGATE_WEBHOOK_SECRET: SECRET },
    );
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    const hook = (JSON.parse(created.stdout) as { webhook: { id: string; url: string; format: string } }).webhook;
    expect(hook).toMatchObject({ url: receiver.url, format: "WEBHOOK_FORMAT_JSON" });
    expect(created.stdout).not.toContain(SECRET);

    const list = await runCli(["webhooks", "list", ...O], env);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+URL\s+FORMAT\s+PROJECT\s+ENVIRONMENT\s+KINDS\s+ENABLED$/);
    expect(list.stdout).toMatch(new RegExp(`${hook.id}\\s+\\S+\\s+json\\s+cli\\s+\\*\\s+approval.decided\\s+yes`));

    await createApprovalPolicy(server, env.RELEASEGATE_TOKEN!, project, "one", "prod", 1);
    const intent = await registerIntent(server, env.RELEASEGATE_TOKEN!, project);
    await server.client(PolicyService, bobEnv.RELEASEGATE_TOKEN).externalApproveRelease({ project, releaseIntentId: intent, targetEnvironment: "prod" });
    await waitFor(() => receiver.delivered().at(0), 10_000, "the delivery");
    const log = await waitFor(async () => {
      const r = await runCli(["webhooks", "deliveries", hook.id, ...O], env);
      return /delivered/.test(r.stdout) ? r : undefined;
    });
    expect(log.stdout).toMatch(new RegExp(`${receiver.delivered()[0]!.eventId}\\s+approval.decided\\s+delivered\\s+1\\s+204`));

    const disabled = await runCli(["webhooks", "disable", hook.id, ...O], env);
    expect(disabled.stdout).toMatch(/\bno$/m);
    const deleted = await runCli(["webhooks", "delete", hook.id, ...O], env);
    expect(deleted).toMatchObject({ code: 0, stdout: `deleted webhook ${hook.id}\n` });
  });

  it("a member is refused (exit 3) and a missing secret is a usage error (exit 2)", async () => {
    const denied = await runCli(["webhooks", "list", ...O], bobEnv);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toBe("error: PERMISSION_DENIED: member bob may not webhook.read in organisation acme\n");
    const noSecret = await runCli(["webhooks", "create", receiver.url, ...O, "--kinds", "approval.decided"], env);
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/--secret <secret>' not specified/);
  });
});
