import { describe, expect, it } from "vitest";
import {
  type ApprovalRequest,
  asSeenAt,
  checkTransition,
  effectiveState,
  expiryFor,
  FINAL_STATES,
  finalRequestMessage,
  isDue,
  isFinal,
  REQUEST_STATES,
} from "../../src/requests/request-state.js";

const T0 = new Date("2026-03-01T00:00:00.000Z");
const base: ApprovalRequest = {
  id: "00000000-0000-4000-8000-000000000001",
  organisation: "acme",
  project: "web",
  releaseIntentId: "00000000-0000-4000-8000-0000000000aa",
  environment: "prod",
  state: "pending",
  requestedByUserId: "deploy-bot",
  requestedByActorType: "service",
  openedBy: "request",
  requestedAt: T0,
};

describe("approval request state machine", () => {
  // Every pair of states: only pending → a final state is allowed.
  for (const from of REQUEST_STATES)
    for (const to of REQUEST_STATES)
      it(`${from} → ${to} is ${from === "pending" && to !== "pending" ? "allowed" : "refused"}`, () => {
        const check = checkTransition(from, to);
        expect(check.ok).toBe(from === "pending" && to !== "pending");
        if (!check.ok) expect(check.why).toMatch(from === "pending" ? /cannot become pending again/ : new RegExp(`already ${from}, which is final`));
      });

  it("knows the five final states and pending", () => {
    expect([...FINAL_STATES].sort()).toEqual(["approved", "cancelled", "expired", "rejected", "superseded"]);
    expect(REQUEST_STATES.filter((s) => !isFinal(s))).toEqual(["pending"]);
  });

  it("a request expires after the longest timeout; none or zeros: never", () => {
    expect(expiryFor(T0, [60, 3600, 0])).toEqual(new Date(T0.getTime() + 3_600_000));
    expect(expiryFor(T0, [0, 0])).toBeUndefined();
    expect(expiryFor(T0, [])).toBeUndefined();
  });

  it("a pending request is due from its expires_at on, and then counts as expired", () => {
    const r = { ...base, expiresAt: new Date(T0.getTime() + 1000) };
    expect(isDue(r, new Date(T0.getTime() + 999))).toBe(false);
    expect(isDue(r, new Date(T0.getTime() + 1000))).toBe(true);
    expect(effectiveState(r, new Date(T0.getTime() + 1000))).toBe("expired");
    expect(effectiveState({ ...base }, new Date(T0.getTime() + 10 ** 12))).toBe("pending");
    // A final request is never due, whatever its expiry.
    expect(isDue({ ...r, state: "cancelled" }, new Date(T0.getTime() + 5000))).toBe(false);
  });

  it("a due request is seen as the expired request the reaper will make of it", () => {
    const r = { ...base, expiresAt: new Date(T0.getTime() + 1000) };
    expect(asSeenAt(r, T0)).toBe(r);
    expect(asSeenAt(r, new Date(T0.getTime() + 2000))).toMatchObject({
      state: "expired",
      decidedBy: "system",
      decidedAt: r.expiresAt,
      reason: "request timeout: no decision by 2026-03-01T00:00:01.000Z",
    });
  });

  it("says what happened to a final request and what to do", () => {
    const cancelled: ApprovalRequest = {
      ...base,
      state: "cancelled",
      decidedBy: "ada",
      decidedAt: new Date("2026-03-01T01:00:00.000Z"),
      reason: "wrong build",
    };
    expect(finalRequestMessage(cancelled)).toBe(
      `approval request ${base.id} for release intent ${base.releaseIntentId} in prod was cancelled by ada at 2026-03-01T01:00:00.000Z: wrong build; open a new one with RequestApproval (releasegate request)`,
    );
  });
});
