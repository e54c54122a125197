import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { ApprovalDecidedEvent } from "../../src/approval/event.js";
import { isPublicAddress } from "../../src/notify/address-policy.js";
import { afterFailedAttempt } from "../../src/notify/backoff.js";
import { deliveryBody, requestPageUrl } from "../../src/notify/payload.js";
import { signBody, verifySignature } from "../../src/notify/signature.js";
import { requireWebhookUrl } from "../../src/notify/validate-webhook.js";

describe("afterFailedAttempt (full jitter)", () => {
  const policy = { baseMs: 1_000, maxMs: 30_000, maxAttempts: 5 };
  it("doubles the ceiling per attempt up to maxMs and draws within it", () => {
    expect([1, 2, 3, 4].map((n) => afterFailedAttempt(policy, n, () => 0.999999))).toEqual([
      { dead: false, delayMs: 1_000 },
      { dead: false, delayMs: 2_000 },
      { dead: false, delayMs: 4_000 },
      { dead: false, delayMs: 8_000 },
    ]);
    expect(afterFailedAttempt({ ...policy, maxAttempts: 100 }, 50, () => 0.999999)).toEqual({ dead: false, delayMs: 30_000 });
    expect(afterFailedAttempt(policy, 3, () => 0)).toEqual({ dead: false, delayMs: 0 });
    expect(afterFailedAttempt(policy, 3, () => 0.5)).toEqual({ dead: false, delayMs: 2_000 });
  });
  it("is dead after maxAttempts", () => {
    expect(afterFailedAttempt(policy, 5, () => 0.5)).toEqual({ dead: true });
    expect(afterFailedAttempt({ ...policy, maxAttempts: 1 }, 1, () => 0.5)).toEqual({ dead: true });
  });
});

describe("signature", () => {
  it("is v1= hex HMAC-SHA256 of timestamp.body, as the docs' snippet computes it", () => {
    const body = '{"event_id":"e"}';
    const expected = createHmac("sha256", "s3cret-s3cret-s3cret").update(`1700000000.${body}`).digest("hex");
    expect(signBody("s3cret-s3cret-s3cret", 1_700_000_000, body)).toBe(`v1=${expected}`);
    expect(verifySignature("s3cret-s3cret-s3cret", "1700000000", body, `v1=${expected}`)).toBe(true);
    expect(verifySignature("s3cret-s3cret-s3cret", "1700000001", body, `v1=${expected}`)).toBe(false);
    expect(verifySignature("other-secret-other", "1700000000", body, `v1=${expected}`)).toBe(false);
    expect(verifySignature("s3cret-s3cret-s3cret", "1700000000", `${body} `, `v1=${expected}`)).toBe(false);
  });
});

describe("isPublicAddress", () => {
  it.each([
    "127.0.0.1",
    "127.1.2.3",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "0.0.0.0",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "ff02::1",
    "not an address",
  ])("refuses %s", (a) => expect(isPublicAddress(a)).toBe(false));
  it.each(["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])("accepts %s", (a) =>
    expect(isPublicAddress(a)).toBe(true),
  );
});

describe("requireWebhookUrl", () => {
  it("allows http and private destinations only when the operator allows private networks", () => {
    expect(requireWebhookUrl("http://127.0.0.1:8080/x", true).href).toBe("http://127.0.0.1:8080/x");
    expect(() => requireWebhookUrl("http://127.0.0.1:8080/x", false)).toThrow(/must use https:\/\//);
    expect(() => requireWebhookUrl("https://127.0.0.1/x", false)).toThrow(/non-public address/);
    expect(() => requireWebhookUrl("https://2130706433/x", false)).toThrow(/non-public address/);
    expect(() => requireWebhookUrl("https://LOCALHOST/x", false)).toThrow(/non-public address/);
    expect(() => requireWebhookUrl("ftp://hooks.example.com/x", true)).toThrow(/must use https:\/\//);
    expect(requireWebhookUrl("https://hooks.slack.com/services/T/B/X", false).hostname).toBe("hooks.slack.com");
  });
});

const event: ApprovalDecidedEvent = {
  event_id: "6f1c2d2e-0000-4000-8000-000000000001",
  kind: "approval.break_glass",
  organisation: "acme",
  project: "web",
  environment: "prod",
  release_intent_id: "6f1c2d2e-0000-4000-8000-0000000000aa",
  voter_user_id: "ada",
  voter_username: "Ada <admin>",
  decision: "approved",
  decision_kind: "break_glass",
  current_approvals: 0,
  required_approvals: 2,
  passed: true,
  decided_at: "2026-01-01T00:00:00.000Z",
  reason: "incident <42> & co",
};

describe("deliveryBody", () => {
  it("json is the event JSON as on JetStream", () => {
    expect(deliveryBody("json", event, "http://x")).toBe(JSON.stringify(event));
  });
  it("slack escapes mrkdwn in user text and links the request page", () => {
    const body = JSON.parse(deliveryBody("slack", event, "https://rg.example.com/"));
    const link = requestPageUrl("https://rg.example.com/", event.release_intent_id, "prod");
    expect(link).toBe(`https://rg.example.com/ui/#/release/${event.release_intent_id}?env=prod`);
    expect(body.text).toBe(
      `Ada &lt;admin&gt; broke the glass on release ${event.release_intent_id} for acme/web → prod <${link}|Open the request>`,
    );
    expect(body.blocks).toEqual([
      { type: "section", text: { type: "mrkdwn", text: `Ada &lt;admin&gt; broke the glass on release ${event.release_intent_id} for acme/web → prod` } },
      { type: "context", elements: [{ type: "mrkdwn", text: "Reason: incident &lt;42&gt; &amp; co" }] },
      { type: "actions", elements: [{ type: "button", text: { type: "plain_text", text: "Open the request" }, url: link }] },
    ]);
  });
  it("names a lifecycle kind it has no special words for", () => {
    const body = JSON.parse(deliveryBody("slack", { ...event, kind: "approval.expired", reason: undefined }, "http://h"));
    expect(body.text).toContain(`Approval request expired for release ${event.release_intent_id} in acme/web → prod`);
    expect(body.blocks).toHaveLength(2);
  });
});
