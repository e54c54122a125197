/**
 * A reference model of releasegate's gate, written from the product rules of
 * issues 2 and 3 (policies, intents, deployments, votes, four eyes) and issue
 * 11 (trusted time for soak, the intent's branch, one spelling per
 * environment, declared environments, four eyes that cover the registrant,
 * the checking order shape → authorisation → use case), as the lead's
 * /work/notes/spec-issue11.md states them. It is a specification, deliberately
 * independent of src/: it never imports from it and was not written from it.
 *
 * `apply` answers what a command must do: the acceptable outcomes (more than
 * one only where the spec leaves the order of two refusals open), a rule for
 * the error message, and the answer's content when it succeeds; and it
 * changes the model's state only when the command must succeed.
 */
import { CALLERS, type Caller, type Command, type ProjectRef, type WireConfig } from "./model-commands.js";
import { folded } from "./model-environment.js";

/** Branch patterns the model knows, with an equivalent JS RegExp (all linear and RE2-compatible). */
export const PATTERNS: Readonly<Record<string, RegExp>> = {
  "^main$": /^main$/,
  "^release/": /^release\//,
  feature: /feature/,
  "^(main|release/.+)$": /^(main|release\/.+)$/,
  "[0-9]": /[0-9]/,
};

/** Allowed clock skew for a deployment's finish time in the future, in ms. */
export const FUTURE_SKEW_MS = 60_000;

export type Outcome = "ok" | "InvalidArgument" | "PermissionDenied" | "NotFound" | "FailedPrecondition" | "AlreadyExists";

/** How a refusal's message must read: it starts with one of `prefixes` and contains `includes`. */
export interface MessageRule {
  readonly prefixes?: readonly string[];
  readonly includes?: string;
}

export interface Expectation {
  /** Acceptable outcomes: one, or the refusals whose order the spec leaves open. */
  readonly codes: readonly Outcome[];
  readonly message?: MessageRule;
  /** On success: the parts of the answer the rules fix (keys left out are not compared). */
  readonly value?: unknown;
}

export type PolicyKind = WireConfig["kind"];
type Config =
  | { kind: "soak"; target: string; source: string; seconds: number }
  | { kind: "branch"; target: string; pattern: string }
  | { kind: "approval"; target: string; required: number };

export interface ModelEvaluation {
  readonly name: string;
  readonly type: PolicyKind | "unspecified";
  readonly passed: boolean;
  /** Only where the spec fixes the wording. */
  readonly reason?: string;
  readonly approvals?: { readonly required: number; readonly current: number };
}

export interface ModelIntent {
  readonly id: string;
  readonly project: string;
  readonly author: string;
  readonly branch: string;
  readonly registrant: string;
  readonly registrantType: "user" | "service";
  /** ms since epoch, the server's clock at registration. */
  readonly createdAt: number;
  /** What idempotent re-registration compares (not the registrant). */
  readonly content: string;
  /** The request that registered it, for re-registration commands. */
  readonly request: { readonly authorField: string; readonly caller: string; readonly version: string };
}

interface Deployment {
  readonly project: string;
  readonly intentId: string;
  readonly env: string;
  readonly succeeded: boolean;
  /** The server's clock when it was recorded: soak counts from here. */
  readonly recordedAt: number;
}

interface ProjectState {
  readonly policies: Map<string, { enabled: boolean; config: Config }>;
  declared?: readonly string[];
}

/** A refusal raised by a check; `apply` turns it into the expectation. */
class Refusal {
  constructor(readonly expectation: Expectation) {}
}

const refusal = (code: Outcome, message?: MessageRule): Expectation => ({ codes: [code], message });

/** The refusals of one step whose order the spec does not fix: any of them may come first. */
function anyOf(...candidates: (Expectation | undefined)[]): void {
  const found = candidates.filter((c): c is Expectation => c !== undefined);
  if (found.length === 0) return;
  if (found.length === 1) throw new Refusal(found[0]!);
  const prefixes = found.flatMap((f) => f.message?.prefixes ?? []);
  throw new Refusal({
    codes: [...new Set(found.flatMap((f) => f.codes))],
    message: found.every((f) => f.message?.prefixes !== undefined) ? { prefixes } : undefined,
  });
}

const key = (p: ProjectRef) => `${p.organisation}/${p.project}`;

export class GateModel {
  readonly #projects = new Map<string, ProjectState>();
  readonly intents = new Map<string, ModelIntent>();
  readonly #deployments: Deployment[] = [];
  /** `${intent}|${env}` → voter → decision. */
  readonly #votes = new Map<string, Map<string, "approved" | "rejected">>();
  /** project → distinct `${intent}|${env}|${voter}` that the history holds. */
  readonly #history = new Map<string, Set<string>>();

  #project(p: ProjectRef): ProjectState {
    const k = key(p);
    let s = this.#projects.get(k);
    if (s === undefined) {
      s = { policies: new Map() };
      this.#projects.set(k, s);
    }
    return s;
  }

  /** The declared environments of a project, if any (for the command generator). */
  declared(p: ProjectRef): readonly string[] | undefined {
    return this.#projects.get(key(p))?.declared;
  }

  /** The environments a project's enabled policies of `kind` gate, or read soak from (`source`). */
  environments(p: ProjectRef, kind: PolicyKind | "any", side: "target" | "source" = "target"): string[] {
    const out = new Set<string>();
    for (const x of this.#projects.get(key(p))?.policies.values() ?? []) {
      if (!x.enabled || (kind !== "any" && x.config.kind !== kind)) continue;
      if (side === "target") out.add(x.config.target);
      else if (x.config.kind === "soak") out.add(x.config.source);
    }
    return [...out];
  }

  /** The policy names of a project (for the command generator). */
  policyNames(p: ProjectRef): string[] {
    return [...(this.#projects.get(key(p))?.policies.keys() ?? [])];
  }

  /** What `cmd` must do at the server's time `now` (ms); applies it when it must succeed. */
  apply(cmd: Command, now: number): Expectation {
    if (cmd.kind === "advance") return { codes: ["ok"] };
    try {
      return { codes: ["ok"], value: this.#run(cmd, CALLERS[cmd.caller]!, now) };
    } catch (e) {
      if (e instanceof Refusal) return e.expectation;
      throw e;
    }
  }

  #run(cmd: Exclude<Command, { kind: "advance" }>, caller: Caller, now: number): unknown {
    switch (cmd.kind) {
      case "setEnvs":
        return this.#setEnvs(cmd, caller);
      case "getEnvs": {
        authorise(caller, cmd.project, "any");
        const declared = this.#project(cmd.project).declared;
        return { environments: declared ?? [], declared: declared !== undefined };
      }
      case "createPolicy":
        return this.#createPolicy(cmd, caller);
      case "updatePolicy":
        return this.#updatePolicy(cmd, caller);
      case "deletePolicy": {
        authorise(caller, cmd.project, "admin");
        if (!this.#project(cmd.project).policies.delete(cmd.name)) throw new Refusal(refusal("NotFound"));
        return {};
      }
      case "register":
        return this.#register(cmd, caller, now);
      case "getIntent": {
        authorise(caller, cmd.project, "any");
        const i = this.#intentIn(cmd.project, cmd.id);
        if (i === undefined) throw new Refusal(refusal("NotFound"));
        return { author: i.author, branch: i.branch, registeredBy: i.registrant, registeredByType: i.registrantType };
      }
      case "deploy":
        return this.#deploy(cmd, caller, now);
      case "vote":
        return this.#vote(cmd, caller);
      case "state": {
        const env = shape([["target_environment", cmd.environment, true]])[0]!;
        authorise(caller, cmd.project, "any");
        this.#requireDeclared(cmd.project, [["target_environment", env]]);
        if (this.#intentIn(cmd.project, cmd.id) === undefined) throw new Refusal(refusal("NotFound"));
        if (this.#gates(cmd.project, env).length === 0) throw new Refusal(refusal("NotFound"));
        return { current: this.#approvals(cmd.id, env) };
      }
      case "evaluate":
        return this.#evaluate(cmd, caller, now);
      case "history": {
        const env = shape([["target_environment", cmd.environment, false]])[0];
        authorise(caller, cmd.project, "any");
        const all = [...(this.#history.get(key(cmd.project)) ?? [])];
        const entries = all.filter((e) => env === undefined || e.split("|")[1] === env).sort();
        const intents = new Set(
          entries.map((e) => {
            const i = this.intents.get(e.split("|")[0]!)!;
            return `${i.id}|${i.author}|${i.registrant}`;
          }),
        );
        return { entries, intents: [...intents].sort() };
      }
      case "watch":
        shape([["target_environment", cmd.environment, false]]);
        authorise(caller, cmd.project, "any");
        return { subscribed: true };
    }
  }

  #setEnvs(cmd: Extract<Command, { kind: "setEnvs" }>, caller: Caller): unknown {
    const names = shape(cmd.environments.map((e, i) => [`environments[${i}]`, e, true] as const)) as string[];
    if (new Set(names).size !== names.length || names.length > 64)
      throw new Refusal(refusal("InvalidArgument", { prefixes: ["environments"] }));
    authorise(caller, cmd.project, "admin");
    const project = this.#project(cmd.project);
    if (names.length > 0)
      for (const p of project.policies.values())
        if (environmentsOf(p.config).some((e) => !names.includes(e)))
          throw new Refusal(
            refusal("FailedPrecondition", {
              prefixes: ["environments: policy "],
              includes: "which the new list does not declare; add it or change the policy first",
            }),
          );
    project.declared = names.length > 0 ? names : undefined;
    return { environments: names };
  }

  #config(c: WireConfig): Config {
    const field = { soak: "soak_time", branch: "branch_restriction", approval: "external_approval" }[c.kind];
    const checks: [string, string, boolean][] = [[`${field}.target_environment`, c.target, true]];
    if (c.kind === "soak") checks.push([`${field}.source_environment`, c.source, true]);
    const [target, source] = shape(checks) as [string, string | undefined];
    if (c.kind === "soak") return { ...c, target, source: source! };
    return { ...c, target };
  }

  #undeclaredIn(p: ProjectRef, c: Config): Expectation | undefined {
    const field = { soak: "soak_time", branch: "branch_restriction", approval: "external_approval" }[c.kind];
    const envs: [string, string][] = [[`${field}.target_environment`, c.target]];
    if (c.kind === "soak") envs.push([`${field}.source_environment`, c.source]);
    return this.#undeclared(p, envs);
  }

  #createPolicy(cmd: Extract<Command, { kind: "createPolicy" }>, caller: Caller): unknown {
    const config = this.#config(cmd.config);
    authorise(caller, cmd.project, "admin");
    const project = this.#project(cmd.project);
    anyOf(project.policies.has(cmd.name) ? refusal("AlreadyExists") : undefined, this.#undeclaredIn(cmd.project, config));
    project.policies.set(cmd.name, { enabled: true, config });
    return configValue(config);
  }

  #updatePolicy(cmd: Extract<Command, { kind: "updatePolicy" }>, caller: Caller): unknown {
    const config = cmd.config === undefined ? undefined : this.#config(cmd.config);
    authorise(caller, cmd.project, "admin");
    const policy = this.#project(cmd.project).policies.get(cmd.name);
    anyOf(
      policy === undefined ? refusal("NotFound") : undefined,
      config === undefined ? undefined : this.#undeclaredIn(cmd.project, config),
    );
    if (cmd.enabled !== undefined) policy!.enabled = cmd.enabled;
    if (config !== undefined) policy!.config = config;
    return configValue(policy!.config);
  }

  #register(cmd: Extract<Command, { kind: "register" }>, caller: Caller, now: number): unknown {
    const role = authorise(caller, cmd.project, "any");
    // A member registers as themselves; naming another author needs a service or admin token.
    if (!caller.service && role !== "admin" && cmd.author !== "" && cmd.author !== caller.sub)
      throw new Refusal(refusal("PermissionDenied"));
    const author = cmd.author === "" ? caller.sub : cmd.author;
    // The username defaults from the caller's token only when no author was named.
    const content = `${author}|${cmd.author === "" ? `caller:${caller.sub}` : ""}|${cmd.branch}|${cmd.version}`;
    const existing = this.intents.get(cmd.id);
    if (existing !== undefined) {
      if (existing.project !== key(cmd.project)) throw new Error("model: the generator re-registers only in the intent's project");
      if (existing.content !== content) throw new Refusal(refusal("AlreadyExists"));
      return { created: false, author };
    }
    this.intents.set(cmd.id, {
      id: cmd.id,
      project: key(cmd.project),
      author,
      branch: cmd.branch,
      registrant: caller.sub,
      registrantType: caller.service ? "service" : "user",
      createdAt: now,
      content,
      request: { authorField: cmd.author, caller: caller.sub, version: cmd.version },
    });
    return { created: true, author };
  }

  #deploy(cmd: Extract<Command, { kind: "deploy" }>, caller: Caller, now: number): unknown {
    const errors: Expectation[] = [];
    const env = shapeCollect(errors, "environment", cmd.environment, true);
    if (cmd.status === "unspecified") errors.push(refusal("InvalidArgument", { prefixes: ["status: "] }));
    if (cmd.finishedAt !== undefined && cmd.finishedAt > now + FUTURE_SKEW_MS)
      errors.push(refusal("InvalidArgument", { prefixes: ["finished_at: "], includes: "must not be more than 60s in the future" }));
    anyOf(...errors);
    const role = authorise(caller, cmd.project, "any");
    if (!caller.service && role !== "admin") throw new Refusal(refusal("PermissionDenied"));
    const undeclared = this.#undeclared(cmd.project, [["environment", env!]]);
    const intent = this.#intentIn(cmd.project, cmd.id);
    if (intent === undefined) anyOf(undeclared, refusal("NotFound"));
    const backdated =
      cmd.finishedAt !== undefined && cmd.finishedAt < intent!.createdAt
        ? refusal("InvalidArgument", { prefixes: ["finished_at: "], includes: `is before release intent ${cmd.id} was registered` })
        : undefined;
    anyOf(undeclared, backdated);
    this.#deployments.push({
      project: key(cmd.project),
      intentId: cmd.id,
      env: env!,
      succeeded: cmd.status === "succeeded",
      recordedAt: now,
    });
    return { environment: env, recordedAt: now };
  }

  #vote(cmd: Extract<Command, { kind: "vote" }>, caller: Caller): unknown {
    const env = shape([["target_environment", cmd.environment, true]])[0]!;
    const role = authorise(caller, cmd.project, "any");
    if (caller.service) throw new Refusal(refusal("PermissionDenied"));
    if (cmd.bypass && role !== "admin") throw new Refusal(refusal("PermissionDenied"));
    this.#requireDeclared(cmd.project, [["target_environment", env]]);
    const intent = this.#intentIn(cmd.project, cmd.id);
    if (intent === undefined) throw new Refusal(refusal("NotFound"));
    if (this.#gates(cmd.project, env).length === 0) throw new Refusal(refusal("NotFound"));
    const proxy = intent.registrantType === "user" && intent.registrant !== intent.author && caller.sub === intent.registrant;
    const fourEyes = cmd.decision === "approved" && (caller.sub === intent.author || proxy);
    if (fourEyes && !cmd.bypass)
      throw new Refusal(
        refusal("PermissionDenied", proxy ? { includes: "four eyes cover the registrant" } : undefined),
      );
    const k = `${cmd.id}|${env}`;
    const votes = this.#votes.get(k) ?? new Map();
    this.#votes.set(k, votes);
    votes.set(caller.sub, cmd.decision);
    const history = this.#history.get(key(cmd.project)) ?? new Set();
    this.#history.set(key(cmd.project), history);
    history.add(`${cmd.id}|${env}|${caller.sub}`);
    // An override is what lets a four-eyes case through; a bypass nobody needed may be recorded either way.
    const kind = fourEyes ? "admin_override" : cmd.bypass ? undefined : "peer";
    return { current: this.#approvals(cmd.id, env), decision: cmd.decision, kind };
  }

  #evaluate(cmd: Extract<Command, { kind: "evaluate" }>, caller: Caller, now: number): unknown {
    const target = shape([["target_environment", cmd.environment, true]])[0]!;
    authorise(caller, cmd.project, "any");
    const intent = cmd.id === undefined ? undefined : this.#intentIn(cmd.project, cmd.id);
    if (cmd.id !== undefined && intent === undefined) throw new Refusal(refusal("NotFound"));
    const declared = this.#project(cmd.project).declared;
    if (declared !== undefined && !declared.includes(target)) {
      const reason = `unknown environment ${target} for ${key(cmd.project)}; declared: ${declared.join(", ")}`;
      return {
        evaluations: [{ name: "declared-environments", type: "unspecified", passed: false, reason }],
        allPassed: false,
      };
    }
    const evaluations = [...this.#project(cmd.project).policies]
      .filter(([, p]) => p.enabled && p.config.target === target)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, p]) => this.#evaluateOne(cmd, name, p.config, intent, now));
    return { evaluations, allPassed: evaluations.every((e) => e.passed) };
  }

  #evaluateOne(
    cmd: Extract<Command, { kind: "evaluate" }>,
    name: string,
    c: Config,
    intent: ModelIntent | undefined,
    now: number,
  ): ModelEvaluation {
    switch (c.kind) {
      case "soak": {
        const at = this.#lastSuccess(key(cmd.project), c.source, intent?.id);
        return { name, type: "soak", passed: at !== undefined && now - at >= c.seconds * 1000 };
      }
      case "branch": {
        const requested = cmd.branch === undefined || cmd.branch === "" ? undefined : cmd.branch;
        if (intent !== undefined && intent.branch !== "") {
          if (requested !== undefined && requested !== intent.branch)
            return {
              name,
              type: "branch",
              passed: false,
              reason: `request branch ${requested} differs from release intent ${intent.id}'s branch ${intent.branch}; the intent's branch is what counts`,
            };
          return { name, type: "branch", passed: PATTERNS[c.pattern]!.test(intent.branch) };
        }
        return { name, type: "branch", passed: requested !== undefined && PATTERNS[c.pattern]!.test(requested) };
      }
      case "approval": {
        const current = intent === undefined ? 0 : this.#approvals(intent.id, c.target);
        return {
          name,
          type: "approval",
          passed: intent !== undefined && current >= c.required,
          approvals: { required: c.required, current },
        };
      }
    }
  }

  #intentIn(p: ProjectRef, id: string): ModelIntent | undefined {
    const i = this.intents.get(id);
    return i !== undefined && i.project === key(p) ? i : undefined;
  }

  #gates(p: ProjectRef, env: string) {
    return [...this.#project(p).policies.values()].filter(
      (x) => x.enabled && x.config.kind === "approval" && x.config.target === env,
    );
  }

  #approvals(intentId: string, env: string): number {
    let n = 0;
    for (const d of this.#votes.get(`${intentId}|${env}`)?.values() ?? []) if (d === "approved") n++;
    return n;
  }

  #lastSuccess(project: string, env: string, intentId: string | undefined): number | undefined {
    let latest: number | undefined;
    for (const d of this.#deployments) {
      if (d.project !== project || !d.succeeded || d.env !== env) continue;
      if (intentId !== undefined && d.intentId !== intentId) continue;
      if (latest === undefined || d.recordedAt > latest) latest = d.recordedAt;
    }
    return latest;
  }

  /** FAILED_PRECONDITION when the project declares environments and one of `envs` ([field, name]) is not among them. */
  #undeclared(p: ProjectRef, envs: readonly [string, string][]): Expectation | undefined {
    const declared = this.#project(p).declared;
    if (declared === undefined) return undefined;
    const missing = envs.filter(([, e]) => !declared.includes(e));
    if (missing.length === 0) return undefined;
    return refusal("FailedPrecondition", {
      prefixes: missing.map(([f, e]) => `${f}: environment ${e} is not declared for ${key(p)}`),
      includes: `; declared: ${declared.join(", ")}`,
    });
  }

  #requireDeclared(p: ProjectRef, envs: readonly [string, string][]): void {
    anyOf(this.#undeclared(p, envs));
  }
}

/** Step 1: every environment field folded and validated; refusals of several fields in any order. */
function shape(checks: readonly (readonly [field: string, value: string, required: boolean])[]): (string | undefined)[] {
  const errors: Expectation[] = [];
  const names = checks.map(([field, value, required]) => shapeCollect(errors, field, value, required));
  anyOf(...errors);
  return names;
}

function shapeCollect(errors: Expectation[], field: string, value: string, required: boolean): string | undefined {
  if (value === "") {
    if (required) errors.push(refusal("InvalidArgument", { prefixes: [`${field}: `], includes: "is required" }));
    return undefined;
  }
  const name = folded(value);
  if (name === undefined)
    errors.push(refusal("InvalidArgument", { prefixes: [`${field}: `], includes: "is not a valid environment name" }));
  return name;
}

/** Step 2: a role in the organisation; `admin` also needs an admin user token. Returns the role. */
function authorise(caller: Caller, p: ProjectRef, need: "any" | "admin"): string {
  const role = caller.roles[p.organisation];
  if (role === undefined) throw new Refusal(refusal("PermissionDenied"));
  if (need === "admin" && (role !== "admin" || caller.service)) throw new Refusal(refusal("PermissionDenied"));
  return role;
}

function environmentsOf(c: Config): string[] {
  return c.kind === "soak" ? [c.target, c.source] : [c.target];
}

function configValue(c: Config): unknown {
  return c.kind === "soak" ? { kind: c.kind, target: c.target, source: c.source } : { kind: c.kind, target: c.target };
}
