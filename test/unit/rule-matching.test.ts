import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideRules, type MatchRule, mayStillApprove, unsatisfiableRules } from "../../src/approval/rule-matching.js";

/** A rule for the members of `group` (a set of ids). */
const rule = (required: number, members: readonly string[], openEnded = false): MatchRule => ({
  required,
  isEligible: (id) => members.includes(id),
  ...(openEnded ? { openEnded } : {}),
});

const security = ["alice", "bob"];
const sre = ["alice", "carol"];

describe("shared semantics (GitLab)", () => {
  it("counts a person in two groups for both rules", () => {
    const d = decideRules([rule(1, security), rule(1, sre)], ["alice"], false);
    expect(d.passed).toBe(true);
    expect(d.rules.map((t) => t.counted)).toEqual([["alice"], ["alice"]]);
  });

  it("counts every eligible approver, beyond the required number", () => {
    const d = decideRules([rule(1, ["a", "b", "c"])], ["a", "b", "c"], false);
    expect(d.rules[0]).toEqual({ required: 1, eligible: ["a", "b", "c"], counted: ["a", "b", "c"], unfilled: 0, met: true });
  });

  it("reports unfilled slots per rule", () => {
    const d = decideRules([rule(1, security), rule(2, sre)], ["bob", "carol"], false);
    expect(d.passed).toBe(false);
    expect(d.rules.map((t) => [t.met, t.unfilled])).toEqual([
      [true, 0],
      [false, 1],
    ]);
  });

  it("ignores approvers eligible for no rule", () => {
    const d = decideRules([rule(1, security)], ["mallory"], false);
    expect(d.passed).toBe(false);
    expect(d.rules[0]!.eligible).toEqual([]);
  });

  it("passes with no rules", () => {
    expect(decideRules([], ["x"], false).passed).toBe(true);
    expect(decideRules([], [], true).passed).toBe(true);
  });
});

describe("distinct approvers (bipartite matching)", () => {
  it("counts a person in two groups once", () => {
    const d = decideRules([rule(1, security), rule(1, sre)], ["alice"], true);
    expect(d.passed).toBe(false);
    expect(d.rules.map((t) => t.counted.length)).toEqual([1, 0]);
    expect(d.rules[1]!.unfilled).toBe(1);
  });

  it("finds the assignment a greedy one misses", () => {
    // Greedy in approval order puts alice on security (the first rule she fits)
    // and then has nobody for sre; matching moves bob to security, alice to sre.
    const rules = [rule(1, security), rule(1, sre)];
    const approvers = ["alice", "bob"];
    expect(greedy(rules, approvers)).toBe(false);
    const d = decideRules(rules, approvers, true);
    expect(d.passed).toBe(true);
    expect(d.rules.map((t) => t.counted)).toEqual([["bob"], ["alice"]]);
  });

  it("re-routes along a path of length more than one", () => {
    // a:{0,1} b:{1,2} c:{0}: greedy a→0, b→1, c stuck; matching a→1, b→2, c→0.
    const rules = [rule(1, ["a", "c"]), rule(1, ["a", "b"]), rule(1, ["b"])];
    expect(greedy(rules, ["a", "b", "c"])).toBe(false);
    expect(decideRules(rules, ["a", "b", "c"], true).passed).toBe(true);
  });

  it("fills several slots of one rule", () => {
    const d = decideRules([rule(2, ["a", "b", "c"]), rule(1, ["c"])], ["c", "a", "b"], true);
    expect(d.passed).toBe(true);
    expect(d.rules.map((t) => [...t.counted].sort())).toEqual([["a", "b"], ["c"]]);
  });

  it("keeps counted at most required and lists every eligible approver", () => {
    const d = decideRules([rule(1, ["a", "b"])], ["a", "b"], true);
    expect(d.rules[0]!.counted).toEqual(["a"]);
    expect(d.rules[0]!.eligible).toEqual(["a", "b"]);
  });
});

describe("who may still approve", () => {
  it("lists eligible candidates of unmet rules only (shared)", () => {
    const out = mayStillApprove([rule(1, security), rule(2, ["carol", "dana", "erik"])], ["bob"], ["dana", "erik", "zed"], false);
    expect(out).toEqual([[], ["dana", "erik"]]);
  });

  it("lists a candidate who helps through re-routing (distinct)", () => {
    // alice fills security; sre is empty. bob (security only) helps: alice moves to sre.
    const out = mayStillApprove([rule(1, security), rule(1, sre)], ["alice"], ["bob", "carol", "zed"], true);
    expect(out).toEqual([["bob"], ["carol"]]);
  });

  it("lists nobody for a rule whose slots cannot be freed (distinct)", () => {
    // bob fills security and can go nowhere else; security-only dave cannot help.
    const out = mayStillApprove([rule(1, ["bob", "dave"]), rule(1, ["carol"])], ["bob"], ["dave", "carol"], true);
    expect(out).toEqual([[], ["carol"]]);
  });
});

describe("rules that cannot be met", () => {
  it("names a rule with too few eligible people (shared)", () => {
    expect(unsatisfiableRules([rule(1, security), rule(2, ["carol"])], ["alice", "bob", "carol"], false)).toEqual([1]);
  });

  it("sees that two rules need two people (distinct)", () => {
    expect(unsatisfiableRules([rule(1, ["alice"]), rule(1, ["alice"])], ["alice"], true)).toHaveLength(1);
    expect(unsatisfiableRules([rule(1, ["alice"]), rule(1, ["alice"])], ["alice"], false)).toEqual([]);
  });

  it("assumes enough people for open-ended rules", () => {
    expect(unsatisfiableRules([rule(3, [], true), rule(1, ["alice"])], ["alice"], true)).toEqual([]);
  });
});

/** The wrong algorithm, for contrast: each approver takes the first rule with a free slot. */
function greedy(rules: readonly MatchRule[], approvers: readonly string[]): boolean {
  const load = rules.map(() => 0);
  for (const a of approvers) {
    const r = rules.findIndex((rule, i) => rule.isEligible(a) && load[i]! < rule.required);
    if (r >= 0) load[r]!++;
  }
  return rules.every((rule, i) => load[i]! >= rule.required);
}

/** Exhaustive search: does some assignment of approvers (each to one rule or none) fill every rule? */
function bruteForce(eligible: readonly boolean[][], required: readonly number[], approvers: number): boolean {
  const load = required.map(() => 0);
  const go = (a: number): boolean => {
    if (load.every((l, r) => l >= required[r]!)) return true;
    if (a === approvers) return false;
    if (go(a + 1)) return true;
    for (let r = 0; r < required.length; r++) {
      if (!eligible[r]![a] || load[r]! >= required[r]!) continue;
      load[r]!++;
      const ok = go(a + 1);
      load[r]!--;
      if (ok) return true;
    }
    return false;
  };
  return go(0);
}

const instance = fc
  .record({ approvers: fc.integer({ min: 0, max: 6 }), rules: fc.integer({ min: 1, max: 4 }) })
  .chain(({ approvers, rules }) =>
    fc.record({
      approvers: fc.constant(approvers),
      required: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: rules, maxLength: rules }),
      eligible: fc.array(fc.array(fc.boolean(), { minLength: approvers, maxLength: approvers }), {
        minLength: rules,
        maxLength: rules,
      }),
    }),
  );

function toRules(eligible: readonly boolean[][], required: readonly number[], ids: readonly string[]): MatchRule[] {
  return required.map((n, r) => ({ required: n, isEligible: (id: string) => eligible[r]![ids.indexOf(id)] === true }));
}

describe("matching agrees with exhaustive search", () => {
  it("passes exactly when some assignment fills every slot", () => {
    fc.assert(
      fc.property(instance, ({ approvers, required, eligible }) => {
        const ids = Array.from({ length: approvers }, (_, i) => `u${i}`);
        const d = decideRules(toRules(eligible, required, ids), ids, true);
        expect(d.passed).toBe(bruteForce(eligible, required, approvers));
        // The shown assignment is a real one: each approver counted once, only where eligible.
        const counted = d.rules.flatMap((t) => t.counted);
        expect(new Set(counted).size).toBe(counted.length);
        d.rules.forEach((t, r) => {
          expect(t.counted.length).toBeLessThanOrEqual(required[r]!);
          for (const id of t.counted) expect(eligible[r]![ids.indexOf(id)]).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });

  it("lists a candidate under a rule exactly when approving there fills one more slot", () => {
    fc.assert(
      fc.property(instance, ({ approvers, required, eligible }) => {
        if (approvers === 0) return;
        // The last person is the candidate; the others approved.
        const ids = Array.from({ length: approvers }, (_, i) => `u${i}`);
        const voted = ids.slice(0, -1);
        const candidate = ids.at(-1)!;
        const rules = toRules(eligible, required, ids);
        const before = filledSlots(eligible, required, voted.length, -1);
        const listed = mayStillApprove(rules, voted, [candidate], true);
        required.forEach((_, r) => {
          const helps = eligible[r]![approvers - 1] === true && filledSlots(eligible, required, voted.length, r) > before;
          expect(listed[r]!.includes(candidate)).toBe(helps);
        });
      }),
      { numRuns: 500 },
    );
  });

  it("shared semantics equal a per-rule count", () => {
    fc.assert(
      fc.property(instance, ({ approvers, required, eligible }) => {
        const ids = Array.from({ length: approvers }, (_, i) => `u${i}`);
        const d = decideRules(toRules(eligible, required, ids), ids, false);
        const expected = required.every((n, r) => eligible[r]!.filter(Boolean).length >= n);
        expect(d.passed).toBe(expected);
      }),
    );
  });
});

/**
 * Most slots an assignment fills, by exhaustive search over the first
 * `voters` people, plus (when `extraRule` ≥ 0) person `voters` restricted to
 * `extraRule`.
 */
function filledSlots(eligible: readonly boolean[][], required: readonly number[], voters: number, extraRule: number): number {
  const load = required.map(() => 0);
  const people = extraRule >= 0 ? voters + 1 : voters;
  let best = 0;
  const go = (a: number, filled: number): void => {
    best = Math.max(best, filled);
    if (a === people) return;
    go(a + 1, filled);
    for (let r = 0; r < required.length; r++) {
      if (a === voters && r !== extraRule) continue;
      if (!eligible[r]![a] || load[r]! >= required[r]!) continue;
      load[r]!++;
      go(a + 1, filled + 1);
      load[r]!--;
    }
  };
  go(0, 0);
  return best;
}
