/**
 * A reference model of releasegate's gate, written from the product rules of
 * issues 2 and 3 (policies, intents, deployments, votes, four eyes) and issue
 * 11 (trusted time for soak, the intent's branch, one spelling per
 * environment, declared environments, four eyes that cover the registrant,
 * the checking order shape → authorisation → use case), as the lead's
 * /work/notes/spec-issue11.md states them, and issue 12 (who may approve:
 * the role ladder, approver groups and role grants, scoped and expiring on
 * the server's clock; approval rules with and without distinct approvers,
 * eligibility at vote time and again at count time; a bypass needs a reason;
 * break-glass), as /work/notes/spec-issue12.md states it. It is a specification, deliberately
 * independent of src/: it never imports from it and was not written from it.
 *
 * `apply` answers what a command must do: the acceptable outcomes (more than
 * one only where the spec leaves the order of two refusals open, or leaves
 * open whether a write is refused at all), a rule for the error message, and
 * the answer's content when it succeeds; and it changes the model's state
 * only when the command must succeed (or, for a write the spec leaves open,
 * through `commit` once the service said it succeeded).
 */
import {
  baseOrg,
  CALLERS,
  type Caller,
  type Command,
  LADDER,
  type ProjectRef,
  type Role,
  type WireConfig,
  type WireRule,
} from "./model-commands.js";
import { folded } from "./model-environment.js";
import {
  ageOf,
  due,
  type ModelRequest,
  type RequestExpect,
  type RequestOption,
  viewOf,
  voteOn,
  withNewest,
} from "./model-requests.js";

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
  /**
   * A write whose success the spec leaves open (codes include "ok" and a
   * refusal): the state change, to run only when the service succeeded.
   */
  readonly commit?: () => void;
  /** Issue 13: what the command must do to one intent+environment's approval requests. */
  readonly request?: RequestExpect;
  /** Situations the model met while deciding (the test's tags). */
  readonly tags?: readonly string[];
}

export type PolicyKind = WireConfig["kind"];
type Config =
  | { kind: "soak"; target: string; source: string; seconds: number }
  | { kind: "branch"; target: string; pattern: string }
  | {
      kind: "approval";
      target: string;
      required: number;
      rules: readonly Rule[];
      distinct: boolean;
      /** Issue 13, in seconds (0: none). */
      timeout: number;
      maxAge: number;
      rejectBlocks: boolean;
    }
  | { kind: "supersede"; target: string; sameBranch: boolean };

/** A valid approval rule: a group of the organisation or a minimum role. */
type Rule = { readonly group: string; readonly required: number } | { readonly minRole: Role; readonly required: number };

export interface ModelEvaluation {
  readonly name: string;
  readonly type: PolicyKind | "unspecified";
  /** undefined: the spec leaves it open (either verdict is allowed, neither is unsafe to compare). */
  readonly passed: boolean | undefined;
  /** Only where the spec fixes the wording. */
  readonly reason?: string;
  /** Where the spec fixes only part of the wording: the reason must contain it. */
  readonly reasonIncludes?: string;
  /** `current` undefined for a policy with rules (what the total counts is the implementation's to show). */
  readonly approvals?: { readonly required: number; readonly current: number | undefined };
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

/** A group membership or role grant's scope, stored folded. */
interface Scope {
  readonly scope: "organisation" | "project" | "environment";
  readonly scopeId: string;
  /** ms since epoch; undefined = never expires. */
  readonly expiresAt?: number;
}

interface Group {
  readonly idp: string;
  readonly members: Map<string, Scope>;
}

interface Grant extends Scope {
  readonly ref: string;
  readonly organisation: string;
  readonly user: string;
  readonly role: Role;
}

interface BreakGlass {
  readonly by: string;
  readonly at: number;
  readonly reason: string;
}

const RANK: Readonly<Record<string, number>> = { viewer: 0, member: 1, maintainer: 2, admin: 3 };
const rank = (r: string | undefined): number => (r === undefined ? -1 : (RANK[r] ?? -1));
const isRole = (r: string): r is Role => (LADDER as readonly string[]).includes(r);

/** Active at `t`: an expiry stops it counting at exactly `expires_at`. */
const activeAt = (s: Scope, t: number) => s.expiresAt === undefined || t < s.expiresAt;

/** True when `s` covers a request in `project` (and `env`; undefined: a request without an environment). */
function covers(s: Scope, project: string, env: string | undefined): boolean {
  if (s.scope === "organisation") return true;
  if (s.scope === "project") return s.scopeId === project;
  return env !== undefined && s.scopeId === `${project}/${env}`;
}

/** The group names a policy's rules may name, valid per the spec's pattern. */
export const GROUP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A refusal raised by a check; `apply` turns it into the expectation. */
class Refusal {
  constructor(readonly expectation: Expectation) {}
}

const refusal = (code: Outcome, message?: MessageRule): Expectation => ({ codes: [code], message });

/** A write the spec leaves open: the service may succeed (then `commit` runs) or refuse with one of `codes`. */
class Open {
  constructor(readonly expectation: Expectation) {}
}
function open(codes: readonly Outcome[], value: unknown, commit: () => void): never {
  throw new Open({ codes: ["ok", ...codes], value, commit });
}
/** A step that built its whole expectation (codes, answer, effects on requests). */
function answer(e: Expectation): never {
  throw new Open(e);
}

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
  /** `${intent}|${env}` → its approval requests, oldest first; votes live on them (issue 13). */
  readonly #requests = new Map<string, ModelRequest[]>();
  /** `${intent}|${env}` → the supersessions recorded at registrations of newer intents (issue 13). */
  readonly #superseded = new Map<string, { readonly by: string; readonly policy: string; readonly sameBranch: boolean }[]>();
  /** Situations met while deciding the current command (for the test's tags). */
  #tags: string[] = [];
  /** organisation → group name → group. */
  readonly #groups = new Map<string, Map<string, Group>>();
  readonly #grants: Grant[] = [];
  /** `${intent}|${env}` → the newest break-glass. */
  readonly #breakGlass = new Map<string, BreakGlass>();
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
    this.#tags = [];
    try {
      return { codes: ["ok"], value: this.#run(cmd, CALLERS[cmd.caller]!, now), tags: this.#tags };
    } catch (e) {
      if (e instanceof Refusal || e instanceof Open) return { ...e.expectation, tags: this.#tags };
      throw e;
    }
  }

  /** True when an enabled approval policy with rules gates `environment` (as sent) in `p` (for the test's tags). */
  ruledGate(p: ProjectRef, environment: string): boolean {
    const env = folded(environment);
    return env !== undefined && this.#gates(p, env).some((g) => hasRules(g.config));
  }

  /** Group names of an organisation (for the command generator). */
  groupNames(organisation: string): string[] {
    return [...(this.#groups.get(organisation)?.keys() ?? [])];
  }

  /** Grant refs of an organisation, revoked ones included (for the command generator). */
  grantRefs(organisation: string): string[] {
    return this.#grants.filter((g) => g.organisation === organisation).map((g) => g.ref);
  }

  /** Voters with an active membership of `group` (for the command generator). */
  members(organisation: string, group: string): string[] {
    return [...(this.#groups.get(organisation)?.get(group)?.members.keys() ?? [])];
  }

  /**
   * The caller's effective role in `organisation` at `project`/`env` (undefined:
   * organisation-wide; no env: a request without one) at `t`: the token's role
   * raised by every active grant covering the place. undefined: no role.
   */
  effectiveRole(caller: Caller, organisation: string, project: string | undefined, env: string | undefined, t: number): Role | undefined {
    const base = caller.roles[baseOrg(organisation)];
    let best = base !== undefined && isRole(base) ? rank(base) : -1;
    for (const g of this.#grants) {
      if (g.organisation !== organisation || g.user !== caller.sub || !activeAt(g, t)) continue;
      if (g.scope !== "organisation" && (project === undefined || !covers(g, project, env))) continue;
      best = Math.max(best, rank(g.role));
    }
    return best < 0 ? undefined : LADDER[best];
  }

  /**
   * Step 2 (authorisation) on the ladder: `need` for people; services keep
   * issue 11's rules whatever their role (any role reads, registers and
   * records deployments, admin-only stays admin-only, never vote). Answers
   * the effective role.
   */
  #authorise(caller: Caller, org: string, at: { project?: string; env?: string }, need: Role | "vote", now: number): Role {
    const role = this.effectiveRole(caller, org, at.project, at.env, now);
    if (role === undefined) throw new Refusal(refusal("PermissionDenied"));
    if (caller.service) {
      if (need === "vote" || (need === "admin" && role !== "admin")) throw new Refusal(refusal("PermissionDenied"));
      return role;
    }
    if (rank(role) < rank(need === "vote" ? "member" : need)) throw new Refusal(refusal("PermissionDenied"));
    return role;
  }

  #run(cmd: Exclude<Command, { kind: "advance" }>, caller: Caller, now: number): unknown {
    switch (cmd.kind) {
      case "setEnvs":
        return this.#setEnvs(cmd, caller, now);
      case "getEnvs": {
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "viewer", now);
        const declared = this.#project(cmd.project).declared;
        return { environments: declared ?? [], declared: declared !== undefined };
      }
      case "createPolicy":
        return this.#createPolicy(cmd, caller, now);
      case "updatePolicy":
        return this.#updatePolicy(cmd, caller, now);
      case "deletePolicy": {
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "admin", now);
        if (!this.#project(cmd.project).policies.delete(cmd.name)) throw new Refusal(refusal("NotFound"));
        return {};
      }
      case "register":
        return this.#register(cmd, caller, now);
      case "getIntent": {
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "viewer", now);
        const i = this.#intentIn(cmd.project, cmd.id);
        if (i === undefined) throw new Refusal(refusal("NotFound"));
        return { author: i.author, branch: i.branch, registeredBy: i.registrant, registeredByType: i.registrantType };
      }
      case "deploy":
        return this.#deploy(cmd, caller, now);
      case "vote":
        return this.#vote(cmd, caller, now);
      case "state": {
        const env = shape([["target_environment", cmd.environment, true]])[0]!;
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project, env }, "viewer", now);
        this.#requireDeclared(cmd.project, [["target_environment", env]]);
        if (this.#intentIn(cmd.project, cmd.id) === undefined) throw new Refusal(refusal("NotFound"));
        const gates = this.#gates(cmd.project, env);
        if (gates.length === 0) throw new Refusal(refusal("NotFound"));
        return { current: this.#current(gates.map((g) => g.config as ApprovalConfig), this.#newest(`${cmd.id}|${env}`, now)) };
      }
      case "requestApproval":
        return this.#requestApproval(cmd, caller, now);
      case "cancelRequest":
        return this.#cancelRequest(cmd, caller, now);
      case "getRequest": {
        const env = shape([["target_environment", cmd.environment, true]])[0]!;
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project, env }, "viewer", now);
        const undeclared = this.#undeclared(cmd.project, [["target_environment", env]]);
        if (this.#intentIn(cmd.project, cmd.id) === undefined) anyOf(undeclared, refusal("NotFound"));
        this.#newest(`${cmd.id}|${env}`, now);
        const view = viewOf(this.#requests.get(`${cmd.id}|${env}`) ?? []);
        if (view.state === "expired") this.#tags.push("expired by time");
        // A read of an undeclared environment: whether it is refused like a vote the spec does not say.
        if (undeclared !== undefined) open(["FailedPrecondition"], view, () => {});
        return view;
      }
      case "evaluate":
        return this.#evaluate(cmd, caller, now);
      case "history": {
        const env = shape([["target_environment", cmd.environment, false]])[0];
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project, env }, "viewer", now);
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
        this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "viewer", now);
        return { subscribed: true };
      case "breakGlass":
        return this.#breakGlassCmd(cmd, caller, now);
      case "createGroup":
      case "deleteGroup":
      case "listGroups":
      case "addMember":
      case "removeMember":
      case "grantRole":
      case "revokeGrant":
      case "listGrants":
        return this.#directory(cmd, caller, now);
    }
  }

  #setEnvs(cmd: Extract<Command, { kind: "setEnvs" }>, caller: Caller, now: number): unknown {
    const names = shape(cmd.environments.map((e, i) => [`environments[${i}]`, e, true] as const)) as string[];
    if (new Set(names).size !== names.length || names.length > 64)
      throw new Refusal(refusal("InvalidArgument", { prefixes: ["environments"] }));
    // Declaring environments is for people only (environment.write): a service is refused whatever its role.
    if (caller.service) this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "vote", now);
    this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "admin", now);
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
    const field = FIELDS[c.kind];
    const checks: [string, string, boolean][] = [[`${field}.target_environment`, c.target, true]];
    if (c.kind === "soak") checks.push([`${field}.source_environment`, c.source, true]);
    const errors: Expectation[] = [];
    if (c.kind === "approval") {
      (c.rules ?? []).forEach((r, i) => {
        if (ruleProblem(r) !== undefined) errors.push(refusal("InvalidArgument", { prefixes: [`external_approval.rules[${i}]`] }));
      });
      // Issue 13's durations: whole seconds, 0 for none; a negative one names its field.
      for (const [f, v] of [["request_timeout_seconds", c.timeout ?? 0], ["max_approval_age_seconds", c.maxAge ?? 0]] as const)
        if (v < 0) errors.push(refusal("InvalidArgument", { prefixes: [`external_approval.${f}`, f] }));
    }
    // Forest's cancel_in_progress is not supported (issue 13): validation rejects true.
    if (c.kind === "supersede" && c.cancelInProgress)
      errors.push(refusal("InvalidArgument", { prefixes: ["supersede_pending.cancel_in_progress", "cancel_in_progress"] }));
    const [target, source] = shape(checks, errors) as [string, string | undefined];
    // A soak that reads its own target could never be met (a rule of the service since its first version).
    if (c.kind === "soak" && source === target)
      throw new Refusal(refusal("InvalidArgument", { prefixes: ["soak_time.source_environment"] }));
    if (c.kind === "soak") return { ...c, target, source: source! };
    if (c.kind === "branch") return { ...c, target };
    if (c.kind === "supersede") return { kind: "supersede", target, sameBranch: c.sameBranch };
    const rules = (c.rules ?? []).map((r): Rule => (r.group !== "" ? { group: r.group, required: r.required } : { minRole: r.minRole as Role, required: r.required }));
    return {
      kind: "approval",
      target,
      required: c.required,
      rules,
      distinct: c.distinct ?? false,
      timeout: c.timeout ?? 0,
      maxAge: c.maxAge ?? 0,
      rejectBlocks: c.rejectBlocks ?? false,
    };
  }

  /**
   * The configuration-time check of issue 12: a group rule whose group has
   * fewer active members than it requires is refused (FAILED_PRECONDITION)
   * unless the group is mapped to an identity-provider group. The spec does
   * not say whether a member scoped to another project counts, nor what a
   * rule naming no group of the organisation gets: members covering the
   * policy's place must be accepted, too few members at all must be refused,
   * and in between either is allowed (`open`); a missing group is
   * FAILED_PRECONDITION or NOT_FOUND.
   */
  #ruleCheck(p: ProjectRef, c: Config, now: number): { refusal?: Expectation; open: boolean } {
    if (c.kind !== "approval") return { open: false };
    let isOpen = false;
    for (const r of c.rules) {
      if (!("group" in r)) continue;
      const g = this.#groups.get(p.organisation)?.get(r.group);
      if (g === undefined) return { refusal: { codes: ["FailedPrecondition", "NotFound"] }, open: false };
      if (g.idp !== "") continue;
      const active = [...g.members.values()].filter((m) => activeAt(m, now));
      const covering = active.filter((m) => covers(m, p.project, c.target));
      if (active.length < r.required) return { refusal: refusal("FailedPrecondition"), open: false };
      if (covering.length < r.required) isOpen = true;
    }
    return { open: isOpen };
  }

  #undeclaredIn(p: ProjectRef, c: Config): Expectation | undefined {
    const field = FIELDS[c.kind];
    const envs: [string, string][] = [[`${field}.target_environment`, c.target]];
    if (c.kind === "soak") envs.push([`${field}.source_environment`, c.source]);
    return this.#undeclared(p, envs);
  }

  #createPolicy(cmd: Extract<Command, { kind: "createPolicy" }>, caller: Caller, now: number): unknown {
    const config = this.#config(cmd.config);
    this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "admin", now);
    const project = this.#project(cmd.project);
    const check = this.#ruleCheck(cmd.project, config, now);
    // An open check may be what the service refuses first, before the other refusals.
    const maybe = check.open ? refusal("FailedPrecondition") : undefined;
    if (project.policies.has(cmd.name) || this.#undeclaredIn(cmd.project, config) !== undefined || check.refusal !== undefined)
      anyOf(project.policies.has(cmd.name) ? refusal("AlreadyExists") : undefined, this.#undeclaredIn(cmd.project, config), check.refusal, maybe);
    const commit = () => project.policies.set(cmd.name, { enabled: true, config });
    if (check.open) open(["FailedPrecondition"], configValue(config), commit);
    commit();
    return configValue(config);
  }

  #updatePolicy(cmd: Extract<Command, { kind: "updatePolicy" }>, caller: Caller, now: number): unknown {
    const config = cmd.config === undefined ? undefined : this.#config(cmd.config);
    this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "admin", now);
    const policy = this.#project(cmd.project).policies.get(cmd.name);
    const check = config === undefined ? { open: false } : this.#ruleCheck(cmd.project, config, now);
    const undeclared = config === undefined ? undefined : this.#undeclaredIn(cmd.project, config);
    if (policy === undefined || undeclared !== undefined || check.refusal !== undefined)
      anyOf(
        policy === undefined ? refusal("NotFound") : undefined,
        undeclared,
        check.refusal,
        check.open ? refusal("FailedPrecondition") : undefined,
      );
    // An update that keeps the stored rules: the spec does not say whether they are checked again.
    const kept = config === undefined ? this.#ruleCheck(cmd.project, policy!.config, now) : { open: false };
    const commit = () => {
      if (cmd.enabled !== undefined) policy!.enabled = cmd.enabled;
      if (config !== undefined) policy!.config = config;
    };
    const value = configValue(config ?? policy!.config);
    if (check.open || kept.open || kept.refusal !== undefined) open([...new Set([...(kept.refusal?.codes ?? []), "FailedPrecondition" as const])], value, commit);
    commit();
    return value;
  }

  #register(cmd: Extract<Command, { kind: "register" }>, caller: Caller, now: number): unknown {
    const role = this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project }, "member", now);
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
    const request = this.#supersede(cmd.project, cmd.id, cmd.branch, now);
    if (request !== undefined) answer({ codes: ["ok"], value: { created: true, author }, request });
    return { created: true, author };
  }

  /**
   * Supersede-pending on the registration of `newer`: for each enabled
   * supersede policy of the project, every older intent (same branch when
   * same_branch_only; then a no-branch intent never) not yet deployed
   * successfully to the policy's target is superseded there, and its pending
   * request becomes superseded. Answers the effect on the first pending
   * request it superseded, for the test to read back.
   */
  #supersede(p: ProjectRef, newer: string, branch: string, now: number): RequestExpect | undefined {
    let first: RequestExpect | undefined;
    for (const [name, pol] of this.#project(p).policies) {
      if (!pol.enabled || pol.config.kind !== "supersede") continue;
      const { target, sameBranch } = pol.config;
      for (const older of this.intents.values()) {
        if (older.id === newer || older.project !== key(p) || !this.#before(older, this.intents.get(newer)!)) continue;
        if (sameBranch && (older.branch === "" || older.branch !== branch)) continue;
        if (this.#deployedTo(older.id, target)) continue;
        const k = `${older.id}|${target}`;
        this.#superseded.set(k, [...(this.#superseded.get(k) ?? []), { by: newer, policy: name, sameBranch }]);
        const r = this.#newest(k, now);
        if (r?.state !== "pending") continue;
        const list = this.#requests.get(k)!;
        const before = viewOf(list);
        const next = withNewest(list, { ...r, state: "superseded", supersededBy: newer }, false);
        this.#requests.set(k, next);
        this.#tags.push("register supersedes a pending request");
        first ??= { at: { project: p, id: older.id, environment: target }, before, after: [{ view: viewOf(next), commit: () => {} }] };
      }
    }
    return first;
  }

  /**
   * Whether intent `a` is older than `b`: registered before it (the issue's
   * "a newer intent is registered"). MODEL_SUPERSEDE_TIE=id adopts the
   * supersede branch's documented reading instead, server time with ties by
   * id (see /work/notes/model13-findings.md), to look past that disagreement.
   */
  #before(a: ModelIntent, b: ModelIntent): boolean {
    if (process.env.MODEL_SUPERSEDE_TIE === "id") return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
    const order = [...this.intents.keys()];
    return order.indexOf(a.id) < order.indexOf(b.id);
  }

  #deployedTo(intentId: string, env: string): boolean {
    return this.#deployments.some((d) => d.intentId === intentId && d.env === env && d.succeeded);
  }

  #deploy(cmd: Extract<Command, { kind: "deploy" }>, caller: Caller, now: number): unknown {
    const errors: Expectation[] = [];
    const env = shapeCollect(errors, "environment", cmd.environment, true);
    if (cmd.status === "unspecified") errors.push(refusal("InvalidArgument", { prefixes: ["status: "] }));
    if (cmd.finishedAt !== undefined && cmd.finishedAt > now + FUTURE_SKEW_MS)
      errors.push(refusal("InvalidArgument", { prefixes: ["finished_at: "], includes: "must not be more than 60s in the future" }));
    anyOf(...errors);
    // Maintainers record deployments (issue 12's ladder); services whatever their role.
    this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project, env }, "maintainer", now);
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

  #vote(cmd: Extract<Command, { kind: "vote" }>, caller: Caller, now: number): unknown {
    const errors: Expectation[] = [];
    // A bypass needs a written reason: a shape check, before authorisation (issue 12).
    if (cmd.decision === "approved" && cmd.bypass && (cmd.comment ?? "").trim().length < 10)
      errors.push(refusal("InvalidArgument", { prefixes: ["comment: "], includes: "a bypass needs a reason" }));
    const env = shape([["target_environment", cmd.environment, true]], errors)[0]!;
    const org = cmd.project.organisation;
    const role = this.#authorise(caller, org, { project: cmd.project.project, env }, "vote", now);
    if (cmd.bypass && role !== "admin") throw new Refusal(refusal("PermissionDenied"));
    this.#requireDeclared(cmd.project, [["target_environment", env]]);
    const intent = this.#intentIn(cmd.project, cmd.id);
    if (intent === undefined) throw new Refusal(refusal("NotFound"));
    const gates = this.#gates(cmd.project, env);
    if (gates.length === 0) throw new Refusal(refusal("NotFound"));
    const proxy = intent.registrantType === "user" && intent.registrant !== intent.author && caller.sub === intent.registrant;
    const fourEyes = cmd.decision === "approved" && (caller.sub === intent.author || proxy);
    const idp = caller.groups ?? [];
    // Issue 12: an approval from someone eligible for no rule of any enabled approval policy on the
    // environment is refused; which of it and four eyes comes first is open. A policy without rules
    // "behaves exactly as today" (anyone's approval counts), so with one on the environment every
    // voter is eligible for something and the vote is taken.
    const ruled = gates.filter((g) => hasRules(g.config));
    const ineligible =
      cmd.decision === "approved" &&
      ruled.length > 0 &&
      ruled.length === gates.length &&
      !ruled.some((g) => this.#eligibleRules(g.config as ApprovalConfig, cmd.project, caller.sub, idp, now).length > 0);
    // Issue 13: votes belong to the newest request; when it is final (a due one counts as expired) the
    // vote is refused, saying what happened. Which of this and the refusals above comes first is open.
    const k = `${cmd.id}|${env}`;
    const newest = this.#newest(k, now);
    const final = newest !== undefined && newest.state !== "pending" ? newest.state : undefined;
    const personal = (fourEyes && !cmd.bypass) || ineligible;
    if (final !== undefined && !personal) this.#tags.push(`vote on ${final === "expired" || final === "approved" ? "an" : "a"} ${final} request refused`);
    anyOf(
      fourEyes && !cmd.bypass
        ? refusal("PermissionDenied", proxy ? { includes: "four eyes cover the registrant" } : undefined)
        : undefined,
      ineligible ? refusal("PermissionDenied") : undefined,
      final !== undefined ? refusal("FailedPrecondition", { includes: final }) : undefined,
    );
    const list = this.#requests.get(k) ?? [];
    // A vote with no request at all opens one (Forest's clients vote without asking); it starts with this vote.
    const voted = voteOn(newest ?? this.#fresh(cmd.project, env, "vote", now), caller.sub, cmd.decision, idp, now);
    if (newest === undefined) this.#tags.push("request opened by a vote");
    const record = () => {
      const history = this.#history.get(key(cmd.project)) ?? new Set();
      this.#history.set(key(cmd.project), history);
      history.add(`${cmd.id}|${env}|${caller.sub}`);
    };
    const after = this.#settle(cmd.project, intent, env, voted, now, true, cmd.decision === "rejected" ? caller.sub : undefined).map((r) => {
      const next = withNewest(list, r, newest === undefined);
      return { view: viewOf(next), commit: () => {
        this.#requests.set(k, next);
        record();
      } };
    });
    if (after.length === 1 && after[0]!.view.state === "approved") this.#tags.push("request approved by a vote");
    // An override is what lets a four-eyes case through; a bypass nobody needed may be recorded either way.
    const kind = fourEyes ? "admin_override" : cmd.bypass ? undefined : "peer";
    const value = { current: this.#current(gates.map((g) => g.config as ApprovalConfig), voted), decision: cmd.decision, kind };
    // A superseded intent without a request: whether a vote opens one there the spec does not say.
    const superseded = newest === undefined && this.#superseded.has(k);
    answer({
      codes: superseded ? ["ok", "FailedPrecondition"] : ["ok"],
      value,
      request: { at: { project: cmd.project, id: cmd.id, environment: env }, before: viewOf(list), after },
    });
  }

  /** RequestApproval (issue 13): services and members; idempotent while a request is pending. */
  #requestApproval(cmd: Extract<Command, { kind: "requestApproval" }>, caller: Caller, now: number): unknown {
    const env = shape([["target_environment", cmd.environment, true]])[0]!;
    this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project, env }, "member", now);
    const undeclared = this.#undeclared(cmd.project, [["target_environment", env]]);
    if (this.#intentIn(cmd.project, cmd.id) === undefined) anyOf(undeclared, refusal("NotFound"));
    anyOf(undeclared);
    if (this.#gates(cmd.project, env).length === 0) throw new Refusal(refusal("FailedPrecondition"));
    const k = `${cmd.id}|${env}`;
    // The newest first: a due request turns expired, and the list read after it says so.
    const newest = this.#newest(k, now);
    const list = this.#requests.get(k) ?? [];
    const at = { project: cmd.project, id: cmd.id, environment: env };
    const before = viewOf(list);
    if (newest?.state === "pending") {
      this.#tags.push("requestApproval: pending one returned (created false)");
      answer({ codes: ["ok"], value: { created: false, state: "pending" }, request: { at, before, after: [{ view: before, commit: () => {} }] } });
    }
    const next = [...list, this.#fresh(cmd.project, env, "request", now)];
    const opened: RequestOption = { view: viewOf(next), commit: () => this.#requests.set(k, next) };
    if (newest !== undefined) this.#tags.push(`requestApproval after ${newest.state}`);
    // After an approval, whether asking again returns the approved request or opens a new one is open;
    // so is whether a superseded intent may ask again.
    const approved = newest?.state === "approved";
    const superseded = this.#superseded.has(k);
    const after = approved ? [opened, { view: before, commit: () => {} }] : [opened];
    // A superseded intent asking again: refused, or a request opened and superseded at once (the
    // supersede branch's answer, consistent with "superseded there").
    if (superseded) after.push(this.#bornSuperseded(k, list, now, "request", cmd.project, env));
    answer({
      codes: superseded ? ["ok", "FailedPrecondition"] : ["ok"],
      value: { created: approved ? undefined : true },
      request: { at, before, after },
    });
  }

  /** CancelApprovalRequest (issue 13): the intent's author, its registrant or an organisation admin. */
  #cancelRequest(cmd: Extract<Command, { kind: "cancelRequest" }>, caller: Caller, now: number): unknown {
    const env = shape([["target_environment", cmd.environment, true]])[0]!;
    const org = cmd.project.organisation;
    this.#authorise(caller, org, { project: cmd.project.project, env }, "viewer", now);
    const admin = !caller.service && this.effectiveRole(caller, org, undefined, undefined, now) === "admin";
    // An admin grant on just this project: whether that is "an admin" the spec does not say.
    const projectAdmin = !caller.service && !admin && this.effectiveRole(caller, org, cmd.project.project, env, now) === "admin";
    const undeclared = this.#undeclared(cmd.project, [["target_environment", env]]);
    const intent = this.#intentIn(cmd.project, cmd.id);
    if (intent === undefined) anyOf(undeclared, refusal("NotFound"), admin ? undefined : refusal("PermissionDenied"));
    const party = caller.sub === intent!.author || caller.sub === intent!.registrant;
    const stranger = !party && !admin && !projectAdmin;
    if (stranger) this.#tags.push("cancel by a stranger refused");
    anyOf(undeclared, stranger ? refusal("PermissionDenied") : undefined);
    const k = `${cmd.id}|${env}`;
    // The newest first: a due request turns expired, and the list read after it says so.
    const newest = this.#newest(k, now);
    const list = this.#requests.get(k) ?? [];
    const at = { project: cmd.project, id: cmd.id, environment: env };
    const before = viewOf(list);
    if (newest?.state !== "pending") {
      const nothing = refusal("FailedPrecondition");
      if (projectAdmin) anyOf(nothing, refusal("PermissionDenied"));
      answer({ ...nothing, request: { at, before, after: [] } });
    }
    const next = withNewest(list, { ...newest, state: "cancelled" }, false);
    this.#tags.push(party ? "request cancelled by a party" : "request cancelled by an admin");
    answer({
      codes: projectAdmin ? ["ok", "PermissionDenied"] : ["ok"],
      value: { state: "cancelled" },
      request: { at, before, after: [{ view: viewOf(next), commit: () => this.#requests.set(k, next) }] },
    });
  }

  /** A request opened on an intent already superseded at `env`, superseded at once (its newer intent is not compared). */
  #bornSuperseded(k: string, list: readonly ModelRequest[], now: number, openedBy: ModelRequest["openedBy"], p: ProjectRef, env: string): RequestOption {
    const next = [...list, { ...this.#fresh(p, env, openedBy, now), state: "superseded" as const }];
    return { view: viewOf(next), commit: () => this.#requests.set(k, next) };
  }

  /** The newest request of `k`, a due pending one turned expired (it counts as expired at once). */
  #newest(k: string, now: number): ModelRequest | undefined {
    const list = this.#requests.get(k);
    const r = list?.[list.length - 1];
    if (r === undefined || !due(r, now)) return r;
    const expired: ModelRequest = { ...r, state: "expired" };
    this.#requests.set(k, withNewest(list!, expired, false));
    return expired;
  }

  /** A new pending request: it expires after the largest request timeout of the environment's enabled approval policies (0: never). */
  #fresh(p: ProjectRef, env: string, openedBy: ModelRequest["openedBy"], now: number): ModelRequest {
    const t = Math.max(0, ...this.#gates(p, env).map((g) => (g.config as ApprovalConfig).timeout));
    return { state: "pending", requestedAt: now, expiresAt: t > 0 ? now + t * 1000 : undefined, openedBy, votes: new Map() };
  }

  /** The four-eyes parties of an intent (a service registrant never votes). */
  #parties(intent: ModelIntent): string[] {
    return [intent.author, ...(intent.registrantType === "user" ? [intent.registrant] : [])];
  }

  /**
   * What a pending request may become once `r` (its votes as they now are) is
   * judged at `now`: rejected when `rejecter` just rejected and a reject_blocks
   * policy counts them as an eligible approver (open for the author and the
   * registrant), approved when every enabled approval policy passes, pending
   * when one does not; several where the spec leaves the verdict open.
   */
  #settle(p: ProjectRef, intent: ModelIntent, env: string, r: ModelRequest, now: number, atVote: boolean, rejecter?: string): ModelRequest[] {
    if (r.state !== "pending") return [r];
    const gates = this.#gates(p, env).map((g) => g.config as ApprovalConfig);
    const out: ModelRequest[] = [];
    const rejected: ModelRequest = { ...r, state: "rejected" };
    if (rejecter !== undefined) {
      let definite = false;
      let maybe = false;
      const v = r.votes.get(rejecter)!;
      for (const c of gates) {
        if (!c.rejectBlocks) continue;
        if (c.rules.length > 0 && this.#eligibleRules(c, p, rejecter, v.idp, now).length === 0) continue;
        if (this.#parties(intent).includes(rejecter)) maybe = true;
        else definite = true;
      }
      if (definite) {
        this.#tags.push("reject_blocks blocks");
        return [rejected];
      }
      if (maybe) out.push(rejected);
    } else if (gates.some((c) => c.rejectBlocks) && [...r.votes.values()].some((v) => v.decision === "rejected")) {
      // A rejection that blocks at evaluation (cast before the policy blocked): whether the evaluation also
      // ends the request as rejected the spec does not say.
      out.push(rejected);
    }
    // At a vote, whether the maximum approval age already applies ("stop counting at evaluation") is open.
    const verdict = this.#allPass(p, intent, env, r, now, atVote);
    if (verdict !== false) out.push({ ...r, state: "approved" });
    if (verdict !== true) out.push(r);
    return out;
  }

  /** Whether every enabled approval policy of `env` passes on request `r` at `now` (break-glass: all do). */
  #allPass(p: ProjectRef, intent: ModelIntent, env: string, r: ModelRequest | undefined, now: number, atVote = false): boolean | undefined {
    if (this.#breakGlass.has(`${intent.id}|${env}`)) return true;
    let all: boolean | undefined = true;
    for (const g of this.#gates(p, env)) {
      const v = this.#verdict(g.config as ApprovalConfig, p, intent, r, now, atVote).passed;
      if (v === false) return false;
      if (v === undefined) all = undefined;
    }
    return all;
  }

  /**
   * One approval policy on request `r` (the newest of its intent and
   * environment) at `now`, under every reading the spec leaves open: whether
   * an admin's override approval as author or registrant counts for a rule,
   * whether an approval of exactly the maximum age (or one repeated since)
   * still counts, whether the author's or registrant's rejection blocks, and
   * whether an aged rejection still does. undefined where the readings differ.
   * `current`: the approvals that count, where the spec fixes the number.
   */
  #verdict(
    c: ApprovalConfig,
    p: ProjectRef,
    intent: ModelIntent,
    r: ModelRequest | undefined,
    now: number,
    atVote = false,
  ): { passed: boolean | undefined; current: number | undefined } {
    if (r === undefined) return { passed: false, current: 0 };
    if (r.state !== "pending" && r.state !== "approved") return { passed: false, current: undefined };
    const parties = this.#parties(intent);
    const ruled = c.rules.length > 0;
    const votes = [...r.votes].map(([voter, v]) => ({ voter, v, age: ageOf(v, c.maxAge, now), party: parties.includes(voter) }));
    const rejections = c.rejectBlocks ? votes.filter((x) => x.v.decision === "rejected" && (!ruled || this.#eligibleRules(c, p, x.voter, x.v.idp, now).length > 0)) : [];
    const both = [true, false];
    const results = new Set<boolean>();
    for (const overrides of ruled && votes.some((x) => x.party && x.v.decision === "approved") ? both : [true])
      for (const unclear of votes.some((x) => x.age === "unclear") ? both : [true])
        for (const ageless of atVote && votes.some((x) => x.age !== "fresh") ? both : [false])
        for (const partyRejects of rejections.some((x) => x.party) ? both : [true])
          for (const agedRejects of rejections.some((x) => x.age === "aged") ? both : [true]) {
            const counts = (age: string) => ageless || age === "fresh" || (age === "unclear" && unclear);
            if (rejections.some((x) => (!x.party || partyRejects) && (counts(x.age) || (x.age === "aged" && agedRejects)))) {
              results.add(false);
              continue;
            }
            const approvals = votes.filter((x) => x.v.decision === "approved" && counts(x.age) && (!ruled || overrides || !x.party));
            results.add(ruled ? this.#rulesPass(c, p, approvals.map((x) => ({ voter: x.voter, idp: x.v.idp })), now) : approvals.length >= c.required);
          }
    const passed = results.size === 1 ? [...results][0] : undefined;
    if (passed === false && votes.some((x) => x.v.decision === "approved" && x.age === "aged")) this.#tags.push("aged-out approval");
    if (passed === false && rejections.some((x) => !x.party && x.age === "fresh")) this.#tags.push("reject_blocks blocks");
    const current = ruled || votes.some((x) => x.age === "unclear") ? undefined : votes.filter((x) => x.v.decision === "approved" && x.age === "fresh").length;
    return { passed, current };
  }

  /**
   * The approvals count GetExternalApprovalState and a vote answer on
   * request `r` (fixed only for policies without rules and without a maximum
   * age: whether the state applies the age the spec does not say).
   */
  #current(gates: readonly ApprovalConfig[], r: ModelRequest | undefined): number | undefined {
    if (r === undefined) return 0;
    if (r.state !== "pending" && r.state !== "approved") return undefined;
    if (gates.some((c) => c.rules.length > 0 || c.maxAge > 0)) return undefined;
    return [...r.votes.values()].filter((v) => v.decision === "approved").length;
  }

  #breakGlassCmd(cmd: Extract<Command, { kind: "breakGlass" }>, caller: Caller, now: number): unknown {
    const errors: Expectation[] = [];
    const reason = cmd.reason.trim();
    if (reason.length < 10 || cmd.reason.length > 2000) errors.push(refusal("InvalidArgument", { prefixes: ["reason: "] }));
    const env = shape([["target_environment", cmd.environment, true]], errors)[0]!;
    const org = cmd.project.organisation;
    // Organisation admins only. Whether an admin grant on just this project is enough the spec leaves open.
    const orgRole = this.effectiveRole(caller, org, undefined, undefined, now);
    const hereRole = this.effectiveRole(caller, org, cmd.project.project, env, now);
    if (caller.service || hereRole !== "admin") {
      this.#authorise(caller, org, {}, "vote", now);
      throw new Refusal(refusal("PermissionDenied"));
    }
    const undecided = orgRole !== "admin";
    const useCase = (): Expectation | undefined => {
      const undeclared = this.#undeclared(cmd.project, [["target_environment", env]]);
      if (undeclared) return undeclared;
      if (this.#intentIn(cmd.project, cmd.id) === undefined) return refusal("NotFound");
      // Nothing to break: the spec does not name the code (votes answer NOT_FOUND there).
      if (this.#gates(cmd.project, env).length === 0) return { codes: ["NotFound", "FailedPrecondition"] };
      return undefined;
    };
    const refused = useCase();
    const commit = () => {
      this.#breakGlass.set(`${cmd.id}|${env}`, { by: caller.sub, at: now, reason: cmd.reason });
      const history = this.#history.get(key(cmd.project)) ?? new Set();
      this.#history.set(key(cmd.project), history);
      history.add(`${cmd.id}|${env}|${caller.sub}`);
    };
    if (undecided && refused !== undefined) anyOf(refused, refusal("PermissionDenied"));
    if (refused !== undefined) anyOf(refused);
    // Issue 13: break-glass approves the pending request; with none, whether it opens one (approved) is open.
    const k = `${cmd.id}|${env}`;
    // The newest first: a due request turns expired, and the list read after it says so.
    const newest = this.#newest(k, now);
    const list = this.#requests.get(k) ?? [];
    const before = viewOf(list);
    const keep: RequestOption = { view: before, commit };
    let after: RequestOption[] = [keep];
    if (newest?.state === "pending") {
      const next = withNewest(list, { ...newest, state: "approved" }, false);
      after = [{ view: viewOf(next), commit: () => {
        commit();
        this.#requests.set(k, next);
      } }];
    } else if (newest === undefined) {
      const opened: ModelRequest = { state: "approved", requestedAt: now, expiresAt: undefined, openedBy: undefined, votes: new Map(), loose: true };
      after = [keep, { view: { count: 1, state: "approved" }, commit: () => {
        commit();
        this.#requests.set(k, [opened]);
      } }];
    }
    answer({
      codes: undecided ? ["ok", "PermissionDenied"] : ["ok"],
      value: {},
      request: { at: { project: cmd.project, id: cmd.id, environment: env }, before, after },
    });
  }

  /**
   * The approver directory (issue 12, part A): writes need the effective
   * role admin at organisation scope, reads any role (viewer too) there.
   */
  #directory(cmd: Extract<Command, { organisation: string }>, caller: Caller, now: number): unknown {
    const org = cmd.organisation;
    const errors: Expectation[] = [];
    const groupName = (field: string, name: string) => {
      if (!GROUP_NAME.test(name)) errors.push(refusal("InvalidArgument", { prefixes: [`${field}: `] }));
    };
    const user = (u: string) => {
      if (u === "") errors.push(refusal("InvalidArgument", { prefixes: ["user_id: "] }));
    };
    let scope: Scope | undefined;
    if (cmd.kind === "addMember" || cmd.kind === "grantRole") scope = scopeOf(cmd, errors, now);
    switch (cmd.kind) {
      case "createGroup":
        groupName("name", cmd.name);
        if (cmd.idp.length > 200) errors.push(refusal("InvalidArgument", { prefixes: ["idp_group: "] }));
        break;
      case "deleteGroup":
        groupName("name", cmd.name);
        break;
      case "addMember":
      case "removeMember":
        groupName("group", cmd.group);
        user(cmd.user);
        break;
      case "grantRole":
        user(cmd.user);
        if (!isRole(cmd.role)) errors.push(refusal("InvalidArgument", { prefixes: ["role: "] }));
        break;
    }
    anyOf(...errors);
    const read = cmd.kind === "listGroups" || cmd.kind === "listGrants";
    this.#authorise(caller, org, {}, read ? "viewer" : "admin", now);
    const groups = this.#groups.get(org) ?? new Map<string, Group>();
    this.#groups.set(org, groups);
    switch (cmd.kind) {
      case "createGroup":
        if (groups.has(cmd.name)) throw new Refusal(refusal("AlreadyExists"));
        groups.set(cmd.name, { idp: cmd.idp, members: new Map() });
        return { name: cmd.name, idp: cmd.idp };
      case "deleteGroup": {
        if (!groups.has(cmd.name)) throw new Refusal(refusal("NotFound"));
        const commit = () => groups.delete(cmd.name);
        // Deleting a group a policy's rule names: the spec does not say whether it is refused.
        const named = [...this.#projects]
          .filter(([k]) => k.startsWith(`${org}/`))
          .some(([, ps]) => [...ps.policies.values()].some((x) => x.config.kind === "approval" && x.config.rules.some((r) => "group" in r && r.group === cmd.name)));
        if (named) open(["FailedPrecondition"], {}, commit);
        commit();
        return {};
      }
      case "listGroups":
        return {
          groups: [...groups]
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([name, g]) => ({
              name,
              idp: g.idp,
              members: [...g.members].sort(([a], [b]) => (a < b ? -1 : 1)).map(([u, m]) => `${u}|${m.scope}|${m.scopeId}|${activeAt(m, now)}`),
            })),
        };
      case "addMember": {
        const g = groups.get(cmd.group);
        if (g === undefined) throw new Refusal(refusal("NotFound"));
        g.members.set(cmd.user, scope!);
        return { member: `${cmd.user}|${scope!.scope}|${scope!.scopeId}|true` };
      }
      case "removeMember": {
        const g = groups.get(cmd.group);
        if (g === undefined || !g.members.has(cmd.user)) throw new Refusal(refusal("NotFound"));
        g.members.delete(cmd.user);
        return {};
      }
      case "grantRole":
        this.#grants.push({ ...scope!, ref: cmd.ref, organisation: org, user: cmd.user, role: cmd.role as Role });
        return { grant: `${cmd.user}|${cmd.role}|${scope!.scope}|${scope!.scopeId}|true` };
      case "revokeGrant": {
        const i = this.#grants.findIndex((g) => g.ref === cmd.ref && g.organisation === org);
        if (i < 0) throw new Refusal(refusal("NotFound"));
        this.#grants.splice(i, 1);
        return {};
      }
      case "listGrants":
        return {
          grants: this.#grants
            .filter((g) => g.organisation === org && (cmd.user === "" || g.user === cmd.user))
            .map((g) => `${g.user}|${g.role}|${g.scope}|${g.scopeId}|${activeAt(g, now)}`)
            .sort(),
        };
    }
  }

  /** The indices of `c`'s rules `voter` is eligible for at `t`, with the idp groups recorded for them. */
  #eligibleRules(c: ApprovalConfig, p: ProjectRef, voter: string, idp: readonly string[], t: number): number[] {
    const caller = CALLERS[voter];
    const out: number[] = [];
    c.rules.forEach((r, i) => {
      if ("group" in r) {
        const g = this.#groups.get(p.organisation)?.get(r.group);
        if (g === undefined) return;
        const m = g.members.get(voter);
        if ((m !== undefined && activeAt(m, t) && covers(m, p.project, c.target)) || (g.idp !== "" && idp.includes(g.idp))) out.push(i);
      } else if (caller !== undefined && rank(this.effectiveRole(caller, p.organisation, p.project, c.target, t)) >= rank(r.minRole)) out.push(i);
    });
    return out;
  }

  /**
   * Whether a policy with rules passes at `t`, decided by brute force over
   * every assignment (a different method than the implementation's
   * matching): without distinct_approvers an approval counts for every rule
   * its voter is eligible for now; with it, each approver fills at most one
   * rule. The policy's own total counts approvals eligible for some rule
   * (the generator keeps that total implied by the rules, where the spec's
   * two readings agree). Votes by `exclude` are left out.
   */
  #rulesPass(c: ApprovalConfig, p: ProjectRef, approvals: readonly { voter: string; idp: readonly string[] }[], t: number): boolean {
    const eligible: number[][] = [];
    for (const { voter, idp } of approvals) {
      const e = this.#eligibleRules(c, p, voter, idp, t);
      if (e.length > 0) eligible.push(e);
    }
    if (eligible.length < c.required) return false;
    const need = c.rules.map((r) => r.required);
    if (!c.distinct) return need.every((n, i) => eligible.filter((e) => e.includes(i)).length >= n);
    const filled = need.map(() => 0);
    const search = (k: number): boolean => {
      if (filled.every((f, i) => f >= need[i]!)) return true;
      if (k === eligible.length) return false;
      for (const i of eligible[k]!) {
        filled[i]!++;
        if (search(k + 1)) return true;
        filled[i]!--;
      }
      return search(k + 1);
    };
    return search(0);
  }

  #evaluate(cmd: Extract<Command, { kind: "evaluate" }>, caller: Caller, now: number): unknown {
    const target = shape([["target_environment", cmd.environment, true]])[0]!;
    this.#authorise(caller, cmd.project.organisation, { project: cmd.project.project, env: target }, "viewer", now);
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
    const allPassed = evaluations.some((e) => e.passed === false) ? false : evaluations.every((e) => e.passed === true) ? true : undefined;
    const request = intent === undefined ? undefined : this.#evaluationEffect(cmd.project, intent, target, now);
    if (request !== undefined) answer({ codes: ["ok"], value: { evaluations, allPassed }, request });
    return { evaluations, allPassed };
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
        const mark = intent === undefined ? undefined : this.#breakGlass.get(`${intent.id}|${c.target}`);
        // Votes count on the newest request of the intent and environment (issue 13).
        const r = intent === undefined ? undefined : this.#newest(`${intent.id}|${c.target}`, now);
        const v = intent === undefined ? { passed: false, current: 0 } : this.#verdict(c, cmd.project, intent, r, now);
        const approvals = { required: c.required, current: hasRules(c) ? undefined : v.current };
        if (mark !== undefined)
          return {
            name,
            type: "approval",
            passed: true,
            reason: `break-glass by ${mark.by} at ${new Date(mark.at).toISOString()}: ${mark.reason}`,
            approvals,
          };
        if (intent === undefined) return { name, type: "approval", passed: false, approvals };
        // A final request that is not approved: not passed, and the reason names its state.
        if (r !== undefined && r.state !== "pending" && r.state !== "approved") {
          this.#tags.push(`evaluate: ${r.state} request holds`);
          return { name, type: "approval", passed: false, reasonIncludes: r.state, approvals };
        }
        return { name, type: "approval", passed: v.passed, approvals };
      }
      case "supersede": {
        if (intent === undefined) return { name, type: "supersede", passed: true };
        const mine = [...this.intents.values()].filter((i) => i.project === intent.project);
        // Newer intents by registration order, under this policy's branch rule.
        const newer = mine
          .filter((n) => this.#before(intent, n))
          .filter((n) => !c.sameBranch || (intent.branch !== "" && n.branch === intent.branch))
          .sort((x, y) => (this.#before(x, y) ? -1 : 1));
        const deployed = this.#deployedTo(intent.id, c.target);
        // Supersessions this very policy (same name, same branch rule) recorded at a registration: they hold,
        // unless the intent has since been deployed there (then the question is moot, and either answer goes).
        const recorded = (this.#superseded.get(`${intent.id}|${c.target}`) ?? []).filter((x) => x.policy === name && x.sameBranch === c.sameBranch);
        if (recorded.length > 0) {
          this.#tags.push("evaluate: superseded older intent holds");
          // The reason names the newer intent: exact where the first recorded one is also the first newer one.
          const by = recorded[0]!.by;
          const exact = newer[0]?.id === by ? { reason: `superseded by ${by} (policy '${name}')` } : { reasonIncludes: "superseded by " };
          return { name, type: "supersede", passed: deployed ? undefined : false, ...(deployed ? {} : exact) };
        }
        if (mine[mine.length - 1] === intent && [...this.#superseded.values()].some((l) => l.some((x) => x.by === intent.id)))
          this.#tags.push("evaluate: newest not superseded");
        // Not superseded at a registration by this policy, yet a newer intent exists (the policy came, was
        // turned on or changed later, or another policy superseded it): whether the answer judges it now the
        // spec does not say, so it may hold.
        return { name, type: "supersede", passed: newer.length > 0 && !deployed ? undefined : true };
      }
    }
  }

  /**
   * What an evaluation with an intent does to its requests at `env` (issue
   * 13): opens one when an approval policy is unsatisfied and there is none
   * yet or the newest is approved but no longer passes; approves the pending
   * one when every approval policy passes; never reopens after rejected,
   * expired, superseded or cancelled.
   */
  #evaluationEffect(p: ProjectRef, intent: ModelIntent, env: string, now: number): RequestExpect | undefined {
    if (this.#gates(p, env).length === 0) return undefined;
    const k = `${intent.id}|${env}`;
    const r = this.#newest(k, now);
    const list = this.#requests.get(k) ?? [];
    const before = viewOf(list);
    const keep: RequestOption = { view: before, commit: () => {} };
    const set = (next: ModelRequest[]): RequestOption => ({ view: viewOf(next), commit: () => this.#requests.set(k, next) });
    let after: RequestOption[] = [keep];
    if (r === undefined || r.state === "approved") {
      const verdict = this.#allPass(p, intent, env, r, now);
      const opened = set([...list, this.#fresh(p, env, "evaluation", now)]);
      // A superseded intent: whether an evaluation still opens a request there the spec does not say.
      if (verdict === false && !this.#superseded.has(k)) {
        after = [opened];
        this.#tags.push(r === undefined ? "request opened by an evaluation" : "approved request no longer passes: a new one");
      } else if (verdict !== true) after = [keep, opened, ...(this.#superseded.has(k) ? [this.#bornSuperseded(k, list, now, "evaluation", p, env)] : [])];
    } else if (r.state === "pending") {
      after = this.#settle(p, intent, env, r, now, false).map((x) => set(withNewest(list, x, false)));
      if (after.length === 1 && after[0]!.view.state === "approved") this.#tags.push("request approved by an evaluation");
    }
    return { at: { project: p, id: intent.id, environment: env }, before, after };
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
function shape(
  checks: readonly (readonly [field: string, value: string, required: boolean])[],
  errors: Expectation[] = [],
): (string | undefined)[] {
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

/**
 * A membership's or grant's scope as sent, validated: organisation without a
 * scope_id, project with one, environment with `project/environment` (the
 * environment folded like every environment field); expires_at in the future.
 */
function scopeOf(c: { scope: string; scopeId: string; expiresAt?: number }, errors: Expectation[], now: number): Scope | undefined {
  if (c.expiresAt !== undefined && c.expiresAt <= now)
    errors.push(refusal("InvalidArgument", { prefixes: ["expires_at: "], includes: "must be in the future" }));
  const at = c.expiresAt === undefined ? {} : { expiresAt: c.expiresAt };
  switch (c.scope) {
    case "organisation":
      if (c.scopeId !== "")
        errors.push(refusal("InvalidArgument", { prefixes: ["scope_id: "], includes: "must be empty for an organisation-wide" }));
      return { scope: "organisation", scopeId: "", ...at };
    case "project":
      if (c.scopeId === "") errors.push(refusal("InvalidArgument", { prefixes: ["scope_id: "], includes: "is required" }));
      return { scope: "project", scopeId: c.scopeId, ...at };
    case "environment": {
      if (c.scopeId === "") {
        errors.push(refusal("InvalidArgument", { prefixes: ["scope_id: "], includes: "is required" }));
        return undefined;
      }
      const slash = c.scopeId.indexOf("/");
      const env = slash < 0 ? undefined : folded(c.scopeId.slice(slash + 1));
      if (slash <= 0 || env === undefined) {
        errors.push(refusal("InvalidArgument", { prefixes: ["scope_id: "] }));
        return undefined;
      }
      return { scope: "environment", scopeId: `${c.scopeId.slice(0, slash)}/${env}`, ...at };
    }
    default:
      errors.push(refusal("InvalidArgument", { prefixes: ["scope: "] }));
      return undefined;
  }
}

type ApprovalConfig = Extract<Config, { kind: "approval" }>;

/** The config oneof's field names, which refusals name. */
const FIELDS: Readonly<Record<PolicyKind, string>> = {
  soak: "soak_time",
  branch: "branch_restriction",
  approval: "external_approval",
  supersede: "supersede_pending",
};

function hasRules(c: Config): boolean {
  return c.kind === "approval" && c.rules.length > 0;
}

/** Why a rule as sent is invalid (INVALID_ARGUMENT), or undefined. */
function ruleProblem(r: WireRule): string | undefined {
  if ((r.group === "") === (r.minRole === "")) return "exactly one of group and min_role";
  if (r.minRole !== "" && !["member", "maintainer", "admin"].includes(r.minRole)) return "min_role";
  if (r.group !== "" && !GROUP_NAME.test(r.group)) return "group";
  if (!Number.isInteger(r.required) || r.required < 1 || r.required > 100) return "required_approvals";
  return undefined;
}

function environmentsOf(c: Config): string[] {
  // A supersede policy names only its target, like the approval and branch kinds.
  return c.kind === "soak" ? [c.target, c.source] : [c.target];
}

function configValue(c: Config): unknown {
  if (c.kind === "soak") return { kind: c.kind, target: c.target, source: c.source };
  if (c.kind === "supersede") return { kind: c.kind, target: c.target, sameBranch: c.sameBranch };
  if (c.kind === "approval") return { kind: c.kind, target: c.target, timeout: c.timeout, maxAge: c.maxAge, rejectBlocks: c.rejectBlocks };
  return { kind: c.kind, target: c.target };
}
