import type { ApprovalDecidedEvent } from "../approval/event.js";

/** How a subscription wants its events. */
export type WebhookFormatName = "json" | "slack";

/** The page of a release intent's request for one environment (the web UI's route). */
export function requestPageUrl(publicUrl: string, intentId: string, environment: string): string {
  const base = publicUrl.replace(/\/+$/, "");
  return `${base}/ui/#/release/${encodeURIComponent(intentId)}?env=${encodeURIComponent(environment)}`;
}

/** A headline for a person: what happened, to which release, in which environment. */
function headline(e: ApprovalDecidedEvent): string {
  const where = `${e.organisation}/${e.project} → ${e.environment}`;
  const who = e.voter_username || e.voter_user_id;
  switch (e.kind) {
    case "approval.decided":
      return `${who} ${e.decision} release ${e.release_intent_id} for ${where} (${e.current_approvals}/${e.required_approvals} approvals${e.passed ? ", gate passed" : ""})`;
    case "approval.break_glass":
      return `${who} broke the glass on release ${e.release_intent_id} for ${where}`;
    default: {
      // Lifecycle kinds: approval.requested → "requested", approval.expired → "expired", ...
      const what = e.kind.startsWith("approval.") ? e.kind.slice("approval.".length) : e.kind;
      return `Approval request ${what} for release ${e.release_intent_id} in ${where}`;
    }
  }
}

/** Slack mrkdwn treats &, < and > as markup: escape them in user-supplied text. */
function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The body POSTed for `event`: `json` is the event JSON exactly as on
 * JetStream; `slack` is a Slack incoming-webhook message (`text` as the
 * notification fallback, `blocks` with the headline, the reason of a
 * break-glass, and a button to the request page).
 */
export function deliveryBody(format: WebhookFormatName, event: ApprovalDecidedEvent, publicUrl: string): string {
  if (format === "json") return JSON.stringify(event);
  const link = requestPageUrl(publicUrl, event.release_intent_id, event.environment);
  const text = slackEscape(headline(event));
  const blocks: unknown[] = [{ type: "section", text: { type: "mrkdwn", text } }];
  if (event.reason !== undefined)
    blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `Reason: ${slackEscape(event.reason)}` }] });
  blocks.push({
    type: "actions",
    elements: [{ type: "button", text: { type: "plain_text", text: "Open the request" }, url: link }],
  });
  return JSON.stringify({ text: `${text} <${link}|Open the request>`, blocks });
}
