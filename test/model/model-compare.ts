/**
 * Compares a service answer with the reference model's expectation: the
 * safety property first (never a pass the model holds back), then the code,
 * the message rule and the fixed parts of the answer. A disagreement is a
 * Divergence whose category groups it with others of its kind.
 */

import type { Expectation } from "./gate-model.js";
import { baseOrg, CALLERS, type Command, orgOf } from "./model-commands.js";
import type { RequestOption, RequestView } from "./model-requests.js";
import type { Answer } from "./model-wire.js";

/** A disagreement between the service and the model. */
export class Divergence extends Error {
  constructor(
    readonly category: string,
    readonly unsafe: boolean,
    detail: string,
  ) {
    super(detail);
  }
}

/** True when `actual` has every value `expected` fixes (keys whose expected value is undefined are free). */
function matches(expected: unknown, actual: unknown): boolean {
  if (expected === undefined) return true;
  if (Array.isArray(expected))
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => matches(e, actual[i]));
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null) return false;
    return Object.entries(expected).every(([k, v]) => matches(v, (actual as Record<string, unknown>)[k]));
  }
  return expected === actual;
}

export interface EvaluationAnswer {
  evaluations: { name: string; type: string; passed: boolean | undefined; reason?: string }[];
  allPassed: boolean | undefined;
}

/** Throws a Divergence when the service's answer is not one the model allows. */
export function compare(cmd: Exclude<Command, { kind: "advance" }>, exp: Expectation, got: Answer): void {
  const detail = `model ${JSON.stringify(exp)}\nservice ${JSON.stringify(got)}`;
  if (cmd.kind === "evaluate" && got.code === "ok") {
    const g = got.value as EvaluationAnswer;
    const want = exp.value as EvaluationAnswer | undefined;
    // The safety property first, so that a failure says what matters most. A verdict the
    // spec leaves open (undefined in the model) is never a pass the model forbids.
    if (g.allPassed && (want === undefined || want.allPassed === false))
      throw new Divergence(`UNSAFE evaluate: all_passed where the model ${want === undefined ? `refuses (${exp.codes.join("|")})` : "holds"}`, true, detail);
    for (const e of g.evaluations) {
      const m = want?.evaluations.find((w) => w.name === e.name);
      if (e.passed && m !== undefined && m.passed === false)
        throw new Divergence(`UNSAFE evaluate: ${e.type} policy passed where the model holds`, true, detail);
    }
  }
  if (!exp.codes.includes(got.code as never))
    throw new Divergence(`${cmd.kind}: model ${exp.codes.join("|")}, service ${got.code}${refusalHint(cmd, exp)}`, false, detail);
  if (got.code !== "ok") {
    const rule = exp.message;
    if (rule?.prefixes !== undefined && !rule.prefixes.some((p) => got.message.startsWith(p)))
      throw new Divergence(`${cmd.kind}: ${got.code} message does not start with ${rule.prefixes.join(" | ")}`, false, detail);
    if (rule?.includes !== undefined && !got.message.includes(rule.includes))
      throw new Divergence(`${cmd.kind}: ${got.code} message lacks "${rule.includes}"`, false, detail);
    return;
  }
  if (cmd.kind === "evaluate") {
    // Where the spec fixes only part of a reason (issue 13: the request's state, "superseded by"), it must be in it.
    const want = (exp.value as { evaluations: { name: string; reasonIncludes?: string }[] }).evaluations;
    const g = (got.value as EvaluationAnswer).evaluations;
    for (const w of want) {
      const e = g.find((x) => x.name === w.name);
      if (w.reasonIncludes !== undefined && e !== undefined && !(e.reason ?? "").includes(w.reasonIncludes))
        throw new Divergence(`evaluate: reason lacks "${w.reasonIncludes}"`, false, detail);
    }
  }
  if (!matches(withoutIncludes(exp.value), got.value)) throw new Divergence(`${cmd.kind}: answer differs${answerHint(cmd, exp, got)}`, false, detail);
}

/** An answer with the model's partial reason rules left out (they are checked on their own). */
function withoutIncludes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutIncludes);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== "reasonIncludes").map(([k, v]) => [k, withoutIncludes(v)]));
}

/**
 * Issue 13: the intent+environment's requests as GetApprovalRequest shows
 * them after the command, against what the model allows (`before` after a
 * refusal, one of `after` after a success). Answers the matching option.
 */
export function compareRequest(cmd: Exclude<Command, { kind: "advance" }>, exp: Expectation, got: Answer, view: RequestView | string): RequestOption | undefined {
  const req = exp.request;
  if (req === undefined) return undefined;
  const allowed = got.code === "ok" ? req.after.map((o) => o.view) : [req.before];
  const detail = `model ${JSON.stringify(allowed)}\nservice ${JSON.stringify(view)} (after ${cmd.kind} answered ${got.code})`;
  if (typeof view === "string") throw new Divergence(`${cmd.kind}: approval request ${view.split(" ").slice(0, 2).join(" ")}`, false, detail);
  // The one safety property of requests: never approved where the model does not allow it.
  const unsafe = view.state === "approved" && !allowed.some((v) => v.state === "approved");
  const option = got.code === "ok" ? req.after.find((o) => matches(o.view, view)) : matches(req.before, view) ? undefined : null;
  if (option === null || (got.code === "ok" && option === undefined)) {
    const states = `model ${[...new Set(allowed.map((v) => `${v.count}:${v.state}`))].join("|")}, service ${view.count}:${view.state}`;
    throw new Divergence(`${unsafe ? "UNSAFE " : ""}${cmd.kind}: approval request ${matchesStates(allowed, view) ? "fields" : "state"} differ (${states})`, unsafe, detail);
  }
  return option;
}

function matchesStates(allowed: readonly RequestView[], view: RequestView): boolean {
  return allowed.some((v) => v.count === view.count && v.state === view.state);
}

/** What the model's refusal is about, for grouping disagreements. */
function refusalHint(cmd: Exclude<Command, { kind: "advance" }>, exp: Expectation): string {
  const caller = CALLERS[cmd.caller]!;
  if (exp.codes[0] === "PermissionDenied" && exp.message === undefined) {
    if (caller.roles[baseOrg(orgOf(cmd))] === undefined) return " (caller has no role in the organisation)";
    if (cmd.kind === "vote")
      return caller.service ? " (service voter)" : cmd.bypass ? " (force_bypass by a member)" : " (author approving)";
    if (cmd.kind === "deploy") return " (member recording a deployment)";
  }
  const rule = exp.message?.includes ?? exp.message?.prefixes?.[0];
  return rule === undefined ? "" : ` (${rule.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>")})`;
}

function answerHint(cmd: Command, exp: Expectation, got: Answer): string {
  const want = exp.value as Record<string, unknown>;
  const g = got.value as Record<string, unknown>;
  if (cmd.kind === "evaluate") {
    const w = want as unknown as EvaluationAnswer;
    const a = g as unknown as EvaluationAnswer;
    if (w.evaluations[0]?.name === "declared-environments") return " (undeclared target evaluated as usual)";
    const diffs = w.evaluations
      .map((e, i) => [e, a.evaluations[i]] as const)
      .filter(([e, x]) => x === undefined || !matches(e, x))
      .map(([e, x]) => `${e.type}: model passed=${e.passed}${e.reason === undefined ? "" : " with the spec's reason"}, service ${x === undefined ? "none" : `passed=${x.passed}`}`);
    return diffs.length === 0 ? ` (evaluations ${w.evaluations.length} vs ${a.evaluations.length})` : ` (${[...new Set(diffs)].join("; ")})`;
  }
  const keys = Object.keys(want ?? {}).filter((k) => !matches(want[k], g?.[k]));
  return ` (${keys.join(", ")})`;
}

