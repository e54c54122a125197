import { performance } from "node:perf_hooks";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { BreakGlassService } from "../src/gen/releasegate/v1/break_glass_pb.js";
import { WebhookDeliveryStatus, WebhookFormat, WebhookService } from "../src/gen/releasegate/v1/webhook_pb.js";
import { type Cast, cast, createApprovalPolicy, expectCode, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { WebhookReceiver } from "./support/webhook-receiver.js";

// A long attempt bound (a hanging receiver holds its attempt for 3 s), two
// attempts before a delivery is dead, and 4 attempt slots per replica (so at
// most 1 per subscription).
const ENV = {
  WEBHOOK_CONCURRENCY: "4",
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
  WEBHOOK_TIMEOUT_MS: "3000",
  WEBHOOK_BACKOFF_BASE_MS: "10",
  WEBHOOK_BACKOFF_MAX_MS: "50",
  WEBHOOK_MAX_ATTEMPTS: "2",
};
const SECRET = "isolation-secret-0123456789";
const project = { organisation: "acme", project: "api" };
let server: TestServer;
let t: Cast;
const hanging = new WebhookReceiver(SECRET);
const healthy = new WebhookReceiver(SECRET);
const broken = new WebhookReceiver(SECRET);

beforeAll(async () => {
  await Promise.all([hanging.up(), healthy.up(), broken.up()]);
  hanging.mode = "hang";
  broken.mode = "fail";
  server = await startTestServer({ env: ENV });
  t = await cast();
  await createApprovalPolicy(server, t.ada, project, "one-approval", "prod", 1);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await Promise.all([hanging.down(), healthy.down(), broken.down()]);
});

const hooks = () => server.client(WebhookService, t.ada);
const target = (id: string) => ({ project, releaseIntentId: id, targetEnvironment: "prod" });
const subscribe = async (url: string, eventKinds: string[], projectFilter = "api") =>
  (
    await hooks().createWebhook({
      organisation: "acme",
      project: projectFilter,
      url,
      eventKinds,
      format: WebhookFormat.JSON,
      secret: SECRET,
    })
  ).webhook!.id;
const deliveries = async (subscriptionId: string) =>
  (await hooks().listWebhookDeliveries({ organisation: "acme", subscriptionId })).deliveries;

describe(`webhook isolation and dead letters on ${testDatabaseKind()}`, () => {
  it("a hanging receiver delays neither a vote nor another subscription's delivery", { timeout: 30_000 }, async () => {
    const slow = await subscribe(hanging.url, ["approval.decided"]);
    const fast = await subscribe(healthy.url, ["approval.decided"]);
    const first = await registerIntent(server, t.pipeline, project);
    await server.client(PolicyService, t.bob).externalApproveRelease(target(first));
    await waitFor(() => (hanging.hangingCount === 1 ? true : undefined), 10_000, "the hanging receiver holding an attempt");
    // The healthy subscription got the same event while the other attempt hangs.
    const got = await waitFor(() => healthy.delivered().at(0), 2_000, "the healthy receiver's delivery");
    expect(hanging.hangingCount).toBe(1);
    expect(got.eventId).toBe(hanging.received[0]!.eventId);
    // A vote answers while the attempt still hangs (it is bounded at 3 s).
    const second = await registerIntent(server, t.pipeline, project);
    const started = performance.now();
    await server.client(PolicyService, t.carol).externalApproveRelease(target(second));
    const voteMs = performance.now() - started;
    expect(hanging.hangingCount).toBe(1);
    expect(voteMs).toBeLessThan(500);
    await waitFor(() => (healthy.delivered().length === 2 ? true : undefined), 2_000, "the second healthy delivery");
    // More open requests for the hanging receiver than a replica has slots:
    // it holds one slot (its cap), and the healthy one gets every event meanwhile.
    const more = await Promise.all([1, 2, 3, 4, 5].map(() => registerIntent(server, t.pipeline, project)));
    for (const id of more) await server.client(PolicyService, t.carol).externalApproveRelease(target(id));
    const votedAt = performance.now();
    await waitFor(() => (healthy.delivered().length === 7 ? true : undefined), 2_500, "the healthy receiver's 7 deliveries");
    expect(performance.now() - votedAt).toBeLessThan(2_500);
    expect(hanging.hangingCount).toBe(1);
    await hooks().deleteWebhook({ organisation: "acme", id: slow });
    await hooks().deleteWebhook({ organisation: "acme", id: fast });
  });

  it("dead-letters a delivery after WEBHOOK_MAX_ATTEMPTS and sends it again on request", { timeout: 30_000 }, async () => {
    const id = await subscribe(broken.url, ["approval.break_glass"]);
    const intent = await registerIntent(server, t.pipeline, project);
    const glass = await server.client(BreakGlassService, t.ada).breakGlass({
      ...target(intent),
      reason: "incident 7: the fix cannot wait for review",
    });
    const dead = await waitFor(async () => (await deliveries(id)).find((d) => d.status === WebhookDeliveryStatus.DEAD));
    expect(dead).toMatchObject({
      eventId: glass.eventId,
      kind: "approval.break_glass",
      releaseIntentId: intent,
      environment: "prod",
      attempts: 2,
      lastStatusCode: 500,
      lastError: "HTTP 500: receiver broken",
      nextAttemptAt: "",
    });
    expect(broken.received.length).toBe(2);
    // A dead delivery is not tried again by itself.
    await new Promise((r) => setTimeout(r, 300));
    expect(broken.received.length).toBe(2);
    // Not dead: FAILED_PRECONDITION; unknown: NOT_FOUND.
    await expectCode(
      hooks().redeliverWebhookDelivery({ organisation: "acme", subscriptionId: id, deliveryId: "999999" }),
      Code.NotFound,
      /delivery "999999" not found/,
    );
    broken.mode = "ok";
    const again = await hooks().redeliverWebhookDelivery({ organisation: "acme", subscriptionId: id, deliveryId: dead.id });
    expect(again.delivery).toMatchObject({ status: WebhookDeliveryStatus.PENDING, attempts: 0 });
    const done = await waitFor(async () => (await deliveries(id)).find((d) => d.status === WebhookDeliveryStatus.DELIVERED));
    expect(done).toMatchObject({ id: dead.id, attempts: 1, lastStatusCode: 204, lastError: "" });
    expect(broken.delivered().map((r) => r.eventId)).toEqual([glass.eventId]);
    await expectCode(
      hooks().redeliverWebhookDelivery({ organisation: "acme", subscriptionId: id, deliveryId: dead.id }),
      Code.FailedPrecondition,
      `delivery_id: delivery ${dead.id} is delivered, not dead`,
    );
  });

  it("counts deliveries by outcome and the delivery lag in /metrics", async () => {
    const res = await fetch(`http://127.0.0.1:${server.app.adminPort}/metrics`);
    const text = await res.text();
    const value = (series: string) => Number(text.match(new RegExp(`^${series} (\\S+)$`, "m"))?.[1] ?? Number.NaN);
    expect(value('releasegate_webhook_deliveries_total{outcome="dead"}')).toBe(1);
    expect(value('releasegate_webhook_deliveries_total{outcome="retry"}')).toBeGreaterThanOrEqual(1);
    expect(value('releasegate_webhook_deliveries_total{outcome="delivered"}')).toBeGreaterThanOrEqual(3);
    expect(value("releasegate_webhook_delivery_lag_seconds_count")).toBe(value('releasegate_webhook_deliveries_total{outcome="delivered"}'));
  });
});
