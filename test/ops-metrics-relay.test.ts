import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { waitFor } from "./support/grpc-js.js";
import { deleteStream, SHARED_NATS_URL, uniqueSignalNames } from "./support/nats-fixtures.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

const { stream, prefix } = uniqueSignalNames();
const project = { organisation: "acme", project: "relay-metrics" };
let server: TestServer;
let intentId: string;

/** Current value of an unlabelled series on /metrics. */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.app.adminPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

async function approveAs(sub: string): Promise<void> {
  await server
    .client(PolicyService, await token({ sub, orgs: { acme: "member" } }))
    .externalApproveRelease({ project, releaseIntentId: intentId, targetEnvironment: "prod" });
}

beforeAll(async () => {
  server = await startTestServer({
    env: { NATS_URL: SHARED_NATS_URL, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: prefix },
  });
  const admin = await token({ sub: "ada", orgs: { acme: "admin" } });
  await server.client(PolicyService, admin).createPolicy({
    project,
    name: "three-eyes",
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 3 } },
  });
  intentId = randomUUID();
  await server.client(ReleaseService, admin).registerReleaseIntent({ project, releaseIntentId: intentId, version: "1" });
});
afterAll(async () => {
  await server?.stop();
  await deleteStream(SHARED_NATS_URL, stream);
});

describe("outbox relay metrics with a real NATS", () => {
  it("counts published events and empties the outbox", async () => {
    // bob's first vote opens the approval request: two events (approval.requested, approval.decided).
    await approveAs("bob");
    await waitFor(async () => (await metric("releasegate_outbox_relay_published_total")) === 2, 15_000, "two publishes");
    await waitFor(async () => (await metric("releasegate_outbox_depth")) === 0, 15_000, "an empty outbox");
    expect(await metric("releasegate_outbox_relay_publish_errors_total")).toBe(0);
  });

  it("counts a failed publish (stream deleted under it), then the retry that succeeds", async () => {
    await deleteStream(SHARED_NATS_URL, stream);
    // Second of three approvals: one event (approval.decided), the request stays pending.
    await approveAs("carol");
    await waitFor(
      async () => (await metric("releasegate_outbox_relay_publish_errors_total")) >= 1,
      15_000,
      "a publish error",
    );
    await waitFor(async () => (await metric("releasegate_outbox_relay_published_total")) === 3, 30_000, "the retry");
    expect(await metric("releasegate_outbox_depth")).toBe(0);
    expect(await metric("releasegate_outbox_oldest_unpublished_age_seconds")).toBe(0);
  });
});
