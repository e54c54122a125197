import { lookup } from "node:dns/promises";
import { hostname } from "node:os";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { WebhookDeliveryStatus, WebhookFormat, WebhookService } from "../src/gen/releasegate/v1/webhook_pb.js";
import { isPublicAddress } from "../src/notify/address-policy.js";
import { WEBHOOK_EVENT_KINDS } from "../src/notify/event-kinds.js";
import { type Cast, cast, createApprovalPolicy, expectCode, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { PROTOCOLS, startTestServer, type TestServer, token } from "./support/server.js";

// WEBHOOK_ALLOW_PRIVATE_NETWORKS is off here (the default): https only, public destinations only.
const ENV = { WEBHOOK_MAX_ATTEMPTS: "1", WEBHOOK_TIMEOUT_MS: "1000" };
const SECRET = "a-secret-of-sixteen-plus";
const project = { organisation: "acme", project: "web" };
let server: TestServer;
let t: Cast;
let maintainer: string;

beforeAll(async () => {
  server = await startTestServer({ env: ENV });
  t = await cast();
  maintainer = await token({ sub: "max", orgs: { acme: "maintainer" } });
  await createApprovalPolicy(server, t.ada, project, "one-approval", "prod", 1);
}, 60_000);
afterAll(() => server?.stop());

const hooks = (tok: string, protocol: (typeof PROTOCOLS)[number] = "grpc") => server.client(WebhookService, tok, protocol);
const valid = {
  organisation: "acme",
  url: "https://hooks.example.com/releasegate",
  eventKinds: ["approval.decided"],
  format: WebhookFormat.JSON,
  secret: SECRET,
};

describe(`WebhookService on ${testDatabaseKind()}`, () => {
  for (const protocol of PROTOCOLS)
    it(`lets an admin create, list, disable and delete a subscription, never showing the secret (${protocol})`, async () => {
      const created = (await hooks(t.ada, protocol).createWebhook({ ...valid, project: "web", environment: "Prod" })).webhook!;
      expect(created).toMatchObject({
        organisation: "acme",
        project: "web",
        environment: "prod",
        url: "https://hooks.example.com/releasegate",
        eventKinds: ["approval.decided"],
        format: WebhookFormat.JSON,
        enabled: true,
        createdBy: "ada",
      });
      expect(JSON.stringify(created)).not.toContain(SECRET);
      const listed = await hooks(t.ada, protocol).listWebhooks({ organisation: "acme" });
      expect(listed.webhooks.map((w) => w.id)).toContain(created.id);
      expect(JSON.stringify(listed)).not.toContain(SECRET);
      const disabled = await hooks(t.ada, protocol).updateWebhook({ organisation: "acme", id: created.id, enabled: false });
      expect(disabled.webhook?.enabled).toBe(false);
      await hooks(t.ada, protocol).deleteWebhook({ organisation: "acme", id: created.id });
      expect((await hooks(t.ada, protocol).listWebhooks({ organisation: "acme" })).webhooks.map((w) => w.id)).not.toContain(created.id);
      await expectCode(hooks(t.ada, protocol).deleteWebhook({ organisation: "acme", id: created.id }), Code.NotFound, /not found in organisation acme/);
    });

  it("refuses members, maintainers and other organisations' admins, for reads and writes", async () => {
    const id = (await hooks(t.ada).createWebhook(valid)).webhook!.id;
    for (const tok of [t.bob, maintainer])
      for (const call of [
        () => hooks(tok).createWebhook(valid),
        () => hooks(tok).listWebhooks({ organisation: "acme" }),
        () => hooks(tok).updateWebhook({ organisation: "acme", id, enabled: false }),
        () => hooks(tok).deleteWebhook({ organisation: "acme", id }),
        () => hooks(tok).listWebhookDeliveries({ organisation: "acme", subscriptionId: id }),
      ])
        await expectCode(call(), Code.PermissionDenied, /may not webhook\.(read|write) in organisation acme/);
    await expectCode(hooks(t.mallory).listWebhooks({ organisation: "acme" }), Code.PermissionDenied, "caller mallory has no role in organisation acme");
    // Another organisation's id is not found in this one.
    const other = await token({ sub: "olga", orgs: { other: "admin" } });
    await expectCode(hooks(other).deleteWebhook({ organisation: "other", id }), Code.NotFound);
    await expectCode(hooks("not-a-token").listWebhooks({ organisation: "acme" }), Code.Unauthenticated);
  });

  it("checks the request's shape before the caller's role", async () => {
    await expectCode(hooks(t.bob).createWebhook({ ...valid, secret: "short" }), Code.InvalidArgument, /^secret: must be at least 16 characters/);
  });

  const refusals: [string, Partial<typeof valid>, RegExp | string][] = [
    ["no URL", { url: "" }, "url: is required"],
    ["a relative URL", { url: "/hook" }, /^url: "\/hook" is not an absolute URL/],
    ["plain http", { url: "http://hooks.example.com/x" }, /must use https:\/\/ \(plain http:\/\/ only when the operator sets WEBHOOK_ALLOW_PRIVATE_NETWORKS=true\)/],
    ["credentials in the URL", { url: "https://u:p@hooks.example.com/x" }, /must not carry credentials/],
    ["loopback", { url: "https://127.0.0.1:8443/x" }, /points to a loopback, private, link-local or otherwise non-public address/],
    ["localhost", { url: "https://localhost./x" }, /non-public address/],
    ["IPv6 loopback", { url: "https://[::1]/x" }, /non-public address/],
    ["IPv4-mapped loopback", { url: "https://[::ffff:127.0.0.1]/x" }, /non-public address/],
    ["a private range", { url: "https://10.1.2.3/x" }, /non-public address/],
    ["link-local (cloud metadata)", { url: "https://169.254.169.254/latest" }, /non-public address/],
    ["unspecified", { url: "https://0.0.0.0/x" }, /non-public address/],
    ["a short secret", { secret: "fifteen-chars-x" }, "secret: must be at least 16 characters (use a random string)"],
    ["no event kinds", { eventKinds: [] }, /^event_kinds: name at least one of: approval\.decided, approval\.break_glass/],
    ["an unknown event kind", { eventKinds: ["approval.decided", "approval.explode"] }, `event_kinds: unknown event kind "approval.explode": valid kinds are ${WEBHOOK_EVENT_KINDS.join(", ")}`],
    ["no format", { format: WebhookFormat.UNSPECIFIED }, "format: is required: WEBHOOK_FORMAT_JSON or WEBHOOK_FORMAT_SLACK"],
    ["no organisation", { organisation: "" }, "organisation: is required"],
  ];
  for (const [what, over, message] of refusals)
    it(`refuses ${what} with INVALID_ARGUMENT`, async () => {
      await expectCode(hooks(t.ada).createWebhook({ ...valid, ...over }), Code.InvalidArgument, message);
    });

  it("refuses a bad environment filter, id, page size and page token", async () => {
    await expectCode(hooks(t.ada).createWebhook({ ...valid, environment: "prod env" }), Code.InvalidArgument, /^environment: "prod env" is not a valid environment name/);
    await expectCode(hooks(t.ada).updateWebhook({ organisation: "acme", id: "x", enabled: true }), Code.InvalidArgument, "id: must be a UUID");
    const id = (await hooks(t.ada).createWebhook(valid)).webhook!.id;
    await expectCode(hooks(t.ada).listWebhookDeliveries({ organisation: "acme", subscriptionId: id, pageSize: 501 }), Code.InvalidArgument, "page_size: must be from 1 to 500 (0: 100)");
    await expectCode(hooks(t.ada).listWebhookDeliveries({ organisation: "acme", subscriptionId: id, pageToken: "abc" }), Code.InvalidArgument, /^page_token: must be a delivery id/);
    await expectCode(hooks(t.ada).redeliverWebhookDelivery({ organisation: "acme", subscriptionId: id, deliveryId: "-1" }), Code.InvalidArgument, /^delivery_id:/);
    await expectCode(
      hooks(t.ada).listWebhookDeliveries({ organisation: "acme", subscriptionId: "00000000-0000-4000-8000-000000000000" }),
      Code.NotFound,
      /webhook "00000000-0000-4000-8000-000000000000" not found in organisation acme/,
    );
  });

  it("refuses at delivery a host name that resolves to a private address (DNS can change after create)", { timeout: 30_000 }, async () => {
    // This machine's own name: a host name (so create cannot judge it) that resolves to a non-public address.
    const name = hostname();
    const addresses = await lookup(name, { all: true });
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every((a) => !isPublicAddress(a.address))).toBe(true);
    const created = (await hooks(t.ada).createWebhook({ ...valid, project: "web", url: `https://${name}:9/hook` })).webhook!;
    const intent = await registerIntent(server, t.pipeline, project);
    await server.client(PolicyService, t.bob).externalApproveRelease({ project, releaseIntentId: intent, targetEnvironment: "prod" });
    const dead = await waitFor(async () =>
      (await hooks(t.ada).listWebhookDeliveries({ organisation: "acme", subscriptionId: created.id })).deliveries.find(
        (d) => d.status === WebhookDeliveryStatus.DEAD,
      ),
    );
    expect(dead.lastStatusCode).toBe(0);
    expect(dead.lastError).toBe(
      `destination ${name} resolves to ${addresses[0]!.address}, a non-public address: refused (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)`,
    );
  });

  it("pages the delivery log newest first", { timeout: 30_000 }, async () => {
    const id = (await hooks(t.ada).createWebhook({ ...valid, project: "web", url: `https://${hostname()}:9/paged` })).webhook!.id;
    const policy = server.client(PolicyService, t.bob);
    // One approval makes a request approved and final (issue 13), so each vote gets its own intent.
    for (let i = 0; i < 3; i++) {
      const intent = await registerIntent(server, t.pipeline, project);
      if (i % 2 === 0) await policy.externalApproveRelease({ project, releaseIntentId: intent, targetEnvironment: "prod" });
      else await policy.externalRejectRelease({ project, releaseIntentId: intent, targetEnvironment: "prod" });
    }
    const first = await hooks(t.ada).listWebhookDeliveries({ organisation: "acme", subscriptionId: id, pageSize: 2 });
    expect(first.deliveries).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    const second = await hooks(t.ada).listWebhookDeliveries({ organisation: "acme", subscriptionId: id, pageSize: 2, pageToken: first.nextPageToken });
    expect(second.deliveries).toHaveLength(1);
    expect(second.nextPageToken).toBe("");
    const ids = [...first.deliveries, ...second.deliveries].map((d) => Number(d.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    await hooks(t.ada).deleteWebhook({ organisation: "acme", id });
  });
});
