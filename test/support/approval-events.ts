import { randomUUID } from "node:crypto";
import { APPROVAL_DECIDED, type ApprovalDecidedEvent } from "../../src/approval/event.js";

/**
 * An `approval.decided` event for tests that write outbox rows or NOTIFYs by
 * hand: bob's first approval of a fresh intent of acme/web on prod, 1 of 2;
 * `over` changes any field.
 */
export function decidedEvent(over: Partial<ApprovalDecidedEvent> = {}): ApprovalDecidedEvent {
  return {
    event_id: randomUUID(),
    kind: APPROVAL_DECIDED,
    organisation: "acme",
    project: "web",
    environment: "prod",
    release_intent_id: randomUUID(),
    voter_user_id: "bob",
    voter_username: "Bob",
    decision: "approved",
    decision_kind: "peer",
    current_approvals: 1,
    required_approvals: 2,
    passed: false,
    decided_at: new Date().toISOString(),
    ...over,
  };
}
