import { APPROVAL_BREAK_GLASS, APPROVAL_DECIDED, REQUEST_EVENT_KINDS } from "../approval/event.js";

/**
 * The event kinds a webhook may subscribe to: every kind the outbox carries.
 * Deliveries match on the outbox row's `kind` generically (migration 0018),
 * so a kind added to src/approval/event.ts needs only to be listed here.
 */
export const WEBHOOK_EVENT_KINDS: readonly string[] = [APPROVAL_DECIDED, APPROVAL_BREAK_GLASS, ...REQUEST_EVENT_KINDS];
