/**
 * A reference model of releasegate's gate rules, written from the product
 * rules (issues 2 and 3) in plain TypeScript, deliberately independent of
 * src/policy and src/approval. The model-based test applies the same commands
 * to it and to the real service and compares every answer.
 */

/** Branch patterns the model knows, with an equivalent JS RegExp (all linear and RE2-compatible). */
export const PATTERNS: Readonly<Record<string, RegExp>> = {
  "^main$": /^main$/,
  "^release/": /^release\//,
  feature: /feature/,
  "^(main|release/.+)$": /^(main|release\/.+)$/,
  "[0-9]": /[0-9]/,
};

export type ModelConfig =
  | { kind: "soak"; target: string; source: string; seconds: number }
  | { kind: "branch"; target: string; pattern: string }
  | { kind: "approval"; target: string; required: number };

export interface ModelPolicy {
  readonly name: string;
  enabled: boolean;
  config: ModelConfig;
}

export interface ModelIntent {
  readonly id: string;
  readonly author: string;
  readonly branch: string;
}

interface ModelDeployment {
  readonly intentId: string;
  readonly env: string;
  readonly succeeded: boolean;
  /** ms since epoch */
  readonly finishedAt: number;
}

export type Decision = "approved" | "rejected";

/** The outcome a command must have: "ok" or a gRPC code name. */
export type Expected = "ok" | "AlreadyExists" | "NotFound" | "PermissionDenied" | "InvalidArgument";

export interface ModelEvaluation {
  readonly name: string;
  readonly passed: boolean;
  /** Approval policies only. */
  readonly approvals?: { readonly required: number; readonly current: number };
}

/** Allowed clock skew for a deployment's finish time in the future, in ms. */
export const FUTURE_SKEW_MS = 60_000;

/** One project's state. `now` is read from the shared clock on each call. */
export class GateModel {
  readonly policies = new Map<string, ModelPolicy>();
  readonly intents: ModelIntent[] = [];
  readonly #deployments: ModelDeployment[] = [];
  /** `${intent}|${env}` → voter → decision, in first-cast order. */
  readonly #votes = new Map<string, Map<string, Decision>>();
  readonly #admins: ReadonlySet<string>;

  constructor(admins: readonly string[]) {
    this.#admins = new Set(admins);
  }

  createPolicy(name: string, config: ModelConfig): Expected {
    if (this.policies.has(name)) return "AlreadyExists";
    this.policies.set(name, { name, enabled: true, config });
    return "ok";
  }

  updatePolicy(name: string, change: { enabled?: boolean; config?: ModelConfig }): Expected {
    const p = this.policies.get(name);
    if (p === undefined) return "NotFound";
    if (change.enabled !== undefined) p.enabled = change.enabled;
    if (change.config !== undefined) p.config = change.config;
    return "ok";
  }

  deletePolicy(name: string): Expected {
    return this.policies.delete(name) ? "ok" : "NotFound";
  }

  registerIntent(intent: ModelIntent): Expected {
    this.intents.push(intent);
    return "ok";
  }

  recordDeployment(intentId: string, env: string, succeeded: boolean, finishedAt: number, now: number): Expected {
    if (finishedAt > now + FUTURE_SKEW_MS) return "InvalidArgument";
    if (!this.intents.some((i) => i.id === intentId)) return "NotFound";
    this.#deployments.push({ intentId, env, succeeded, finishedAt });
    return "ok";
  }

  #gate(env: string): ModelPolicy[] {
    return [...this.policies.values()].filter(
      (p) => p.enabled && p.config.kind === "approval" && p.config.target === env,
    );
  }

  vote(voter: string, intentId: string, env: string, decision: Decision, forceBypass: boolean): Expected {
    const intent = this.intents.find((i) => i.id === intentId);
    if (intent === undefined) return "NotFound";
    if (this.#gate(env).length === 0) return "NotFound";
    const admin = this.#admins.has(voter);
    if (forceBypass && !admin) return "PermissionDenied";
    if (decision === "approved" && voter === intent.author && !forceBypass) return "PermissionDenied";
    const key = `${intentId}|${env}`;
    const votes = this.#votes.get(key) ?? new Map<string, Decision>();
    this.#votes.set(key, votes);
    votes.set(voter, decision);
    return "ok";
  }

  /** The current approvals of an intent for an environment. */
  approvals(intentId: string, env: string): number {
    let n = 0;
    for (const d of this.#votes.get(`${intentId}|${env}`)?.values() ?? []) if (d === "approved") n++;
    return n;
  }

  #lastSuccess(env: string, intentId: string | undefined): number | undefined {
    let latest: number | undefined;
    for (const d of this.#deployments) {
      if (!d.succeeded || d.env !== env) continue;
      if (intentId !== undefined && d.intentId !== intentId) continue;
      if (latest === undefined || d.finishedAt > latest) latest = d.finishedAt;
    }
    return latest;
  }

  /**
   * What EvaluatePolicies must answer: the enabled policies for `target` in
   * name order, each passed or not. Unknown intent → NotFound.
   */
  evaluate(
    target: string,
    branch: string | undefined,
    intentId: string | undefined,
    now: number,
  ): { expected: Expected; evaluations: ModelEvaluation[]; allPassed: boolean } {
    const intent = intentId === undefined ? undefined : this.intents.find((i) => i.id === intentId);
    if (intentId !== undefined && intent === undefined) return { expected: "NotFound", evaluations: [], allPassed: false };
    const effectiveBranch = branch !== undefined && branch !== "" ? branch : intent?.branch || undefined;
    const evaluations = [...this.policies.values()]
      .filter((p) => p.enabled && p.config.target === target)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((p) => this.#evaluateOne(p, effectiveBranch, intentId, target, now));
    return { expected: "ok", evaluations, allPassed: evaluations.every((e) => e.passed) };
  }

  #evaluateOne(
    p: ModelPolicy,
    effectiveBranch: string | undefined,
    intentId: string | undefined,
    target: string,
    now: number,
  ): ModelEvaluation {
    const c = p.config;
    switch (c.kind) {
      case "soak": {
        const at = this.#lastSuccess(c.source, intentId);
        return { name: p.name, passed: at !== undefined && Math.floor((now - at) / 1000) >= c.seconds };
      }
      case "branch":
        return { name: p.name, passed: effectiveBranch !== undefined && PATTERNS[c.pattern]!.test(effectiveBranch) };
      case "approval": {
        const current = intentId === undefined ? 0 : this.approvals(intentId, target);
        return {
          name: p.name,
          passed: intentId !== undefined && current >= c.required,
          approvals: { required: c.required, current },
        };
      }
    }
  }
}
