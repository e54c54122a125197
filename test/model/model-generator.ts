/**
 * Random commands for the gate-safety test, drawn to play the adversary of
 * issue 11: several organisations and projects, intents registered by members,
 * admins and services, backdated and future deployments, request branches
 * that differ from the intent's, look-alike environment names, declared
 * environments, service voters and votes through the wrong project. Most
 * commands are plausible (the right admin, a known intent) so that sequences
 * reach states where the gate could open; the rest probe the edges. Issue
 * 12 adds the directory (groups, memberships and role grants, scoped and
 * expiring, to viewers, outsiders and members), approval rules with and
 * without distinct approvers, bypasses without a reason and break-glass; a
 * quarter of the sequences ("rules") open with a group and a ruled policy.
 */
import type { GateModel } from "./gate-model.js";
import { PATTERNS } from "./gate-model.js";
import { baseOrg, CALLERS, type Command, ORGS, type ProjectRef, type WireConfig, type WireRule, type WireScope } from "./model-commands.js";
import { CANONICAL, OTHER_VALID } from "./model-environment.js";

/** mulberry32: small, seedable, good enough to pick commands. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POLICY_NAMES = ["a-gate", "b-gate", "c-soak", "d-branch", "e-any"];
const BRANCHES = ["main", "release/1.2", "feature/x", "hotfix", "mainline", ""];
const TARGETS = ["prod", "staging"];
const SOURCES = ["staging", "qa", "dev"];
const AUTHORS = ["alice", "bob", "ada", "carol", "zed"];
const ADMIN_BY_BASE: Readonly<Record<string, string>> = { acme: "ada", globex: "gus" };
/** The admin of a sequence's organisation. */
const ADMIN_OF = new Proxy({} as Record<string, string>, { get: (_, org: string) => ADMIN_BY_BASE[baseOrg(org)] });
const GROUPS = ["sre", "sec", "ops"];
const IDP = ["sec-idp", "oncall", ""];
const USERS = ["alice", "bob", "carol", "dave", "max", "vic", "erin", "ada", "uma", "zed"];
const COMMENTS = ["", "too short", "    short    ", "hotfix for incident 42", "          x", "release train blocked, author is admin"];
const ALL_CALLERS = Object.keys(CALLERS);

const FULL_WIDTH_OFFSET = 0xff41 - 0x61;
const CONFUSABLE: Readonly<Record<string, string>> = { o: "\u043e", a: "\u0430", e: "\u0435", p: "\u0440", d: "\u0501" };

export class CommandGenerator {
  readonly #rand: () => number;
  readonly #model: GateModel;
  readonly #projects: readonly ProjectRef[];

  /** The policy kind this sequence's policies lean to, so that each kind gets sequences where it can pass. */
  readonly #theme: Exclude<WireConfig["kind"], "supersede"> | "rules" | "requests" | "supersede" | undefined;
  /** Issue 13: this sequence's request timeout (seconds, 0: none), the same on every approval policy it creates. */
  readonly #timeout: number;
  #grants = 0;
  readonly #seq: number;

  /** `projects`: this sequence's projects, acme's first (they get most commands). */
  constructor(rand: () => number, model: GateModel, projects: readonly ProjectRef[], seq = 0) {
    this.#rand = rand;
    this.#model = model;
    this.#projects = projects;
    this.#seq = seq;
    this.#theme = this.#pick(["soak", "approval", "branch", undefined, "rules", "rules", "rules", "requests", "requests", "supersede"] as const);
    // One timeout per sequence: with several approval policies on an environment the request expires after
    // the largest, and one value keeps that reading out of doubt. The shared clock moves by every lane's
    // advances (a few minutes a round), so timeouts are minutes to hours.
    this.#timeout =
      this.#theme === "requests" ? this.#pick([300, 900, 7200]) : this.#theme === "supersede" ? this.#pick([0, 900]) : this.#chance(0.15) ? 900 : 0;
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#rand() * xs.length)]!;
  }

  #chance(p: number): boolean {
    return this.#rand() < p;
  }

  /** A project: mostly the first (acme/web), often the others. */
  #project(): ProjectRef {
    return this.#chance(0.65) ? this.#projects[0]! : this.#pick(this.#projects);
  }

  /** `base` as a caller might spell it: as is, in another case, or as a look-alike. */
  #spell(base: string): string {
    const r = this.#rand();
    if (r < 0.76) return base;
    if (r < 0.88)
      return [...base].map((c) => (this.#chance(0.5) ? c.toUpperCase() : c)).join("");
    if (r < 0.91) return this.#pick(OTHER_VALID);
    if (r < 0.92) return "";
    return this.#lookAlike(base);
  }

  #lookAlike(base: string): string {
    switch (Math.floor(this.#rand() * 9)) {
      case 0:
        return `${base} `;
      case 1:
        return ` ${base}`;
      case 2:
        return `${base}\u200b`;
      case 3: {
        const i = [...base].findIndex((c) => CONFUSABLE[c] !== undefined);
        return i < 0 ? `${base}\u0301` : base.slice(0, i) + CONFUSABLE[base[i]!] + base.slice(i + 1);
      }
      case 4:
        return [...base].map((c) => String.fromCharCode(c.charCodeAt(0) + FULL_WIDTH_OFFSET)).join("");
      case 5:
        return `${base}\n`;
      case 6:
        return `-${base}`;
      case 7:
        return `${base}/eu`;
      default:
        return base.padEnd(64, "x");
    }
  }

  /** A caller for `p`: `preferred` most of the time, anyone (other orgs, services) otherwise. */
  #caller(preferred: readonly string[], p = 0.8): string {
    return this.#chance(p) && preferred.length > 0 ? this.#pick(preferred) : this.#pick(ALL_CALLERS);
  }

  #membersOf(org: string): string[] {
    return ALL_CALLERS.filter((c) => CALLERS[c]!.roles[baseOrg(org)] !== undefined && !CALLERS[c]!.service);
  }

  #servicesOf(org: string): string[] {
    return ALL_CALLERS.filter((c) => CALLERS[c]!.roles[baseOrg(org)] !== undefined && CALLERS[c]!.service);
  }

  /** An intent id and the project to name it through (usually its own, sometimes another: NOT_FOUND). */
  #intent(): { id: string; project: ProjectRef } {
    const intents = [...this.#model.intents.values()];
    if (intents.length === 0 || this.#chance(0.06)) return { id: this.uuid(), project: this.#project() };
    // Often the latest intent, so that deployments, votes and evaluations meet on one release.
    const intent = this.#chance(0.45) ? intents[intents.length - 1]! : this.#pick(intents);
    const own = this.#projects.find((p) => `${p.organisation}/${p.project}` === intent.project)!;
    return { id: intent.id, project: this.#chance(0.85) ? own : this.#project() };
  }

  uuid(): string {
    const hex = Array.from({ length: 32 }, () => Math.floor(this.#rand() * 16).toString(16));
    hex[12] = "4";
    hex[16] = "89ab"[Math.floor(this.#rand() * 4)]!;
    const h = hex.join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** A config; in `project`, when it declares environments, often naming one it does not. */
  #config(project?: ProjectRef): WireConfig {
    const target = project === undefined ? this.#pick(TARGETS) : this.#undeclaredOr(project, () => this.#pick(TARGETS));
    const themed = { soak: 0.5, approval: 0.1, branch: 0.85, rules: 0.1, requests: 0.1, supersede: 0.97 }[this.#theme ?? "approval"];
    const r = this.#theme !== undefined && this.#chance(this.#theme === "rules" ? 0.8 : 0.6) ? themed : this.#rand();
    if (r < 0.35) {
      const ruled = this.#theme === "rules" ? this.#chance(0.85) : this.#chance(this.#theme === "requests" ? 0.1 : 0.2);
      const options = this.#requestOptions();
      if (!ruled) return { kind: "approval", target: this.#spell(target), required: 1 + Math.floor(this.#rand() * 2), ...options };
      const rules = this.#rules(project);
      // The policy's own total at most the largest rule's count: then the spec's two readings of
      // "distinct current approvals" agree (the model leaves the total to the rules).
      const most = Math.max(...rules.map((x) => (ruleValid(x) ? x.required : 1)));
      return { kind: "approval", target: this.#spell(target), required: 1 + Math.floor(this.#rand() * Math.min(2, most)), rules, distinct: this.#chance(0.5), ...options };
    }
    if (r >= 0.93) return this.#supersedeConfig(target);
    if (r < 0.7) {
      const source = this.#pick(SOURCES.filter((s) => s !== target));
      return { kind: "soak", target: this.#spell(target), source: this.#spell(source), seconds: this.#pick([1, 10, 30, 60, 60, 3600]) };
    }
    return { kind: "branch", target: this.#spell(target), pattern: this.#pick(Object.keys(PATTERNS)) };
  }

  /** Issue 13's options of an approval policy: the sequence's timeout, a maximum age and reject_blocks, now and then invalid. */
  #requestOptions(): { timeout?: number; maxAge?: number; rejectBlocks?: boolean } {
    const requests = this.#theme === "requests";
    const maxAge = this.#chance(requests ? 0.5 : 0.1) ? this.#pick([120, 600, 3600]) : 0;
    const rejectBlocks = this.#chance(requests ? 0.4 : 0.1);
    if (this.#chance(0.03)) return this.#chance(0.5) ? { timeout: -1, maxAge, rejectBlocks } : { timeout: this.#timeout, maxAge: -60, rejectBlocks };
    // Forest's clients send none of them: absent when all are off.
    return this.#timeout === 0 && maxAge === 0 && !rejectBlocks ? {} : { timeout: this.#timeout, maxAge, rejectBlocks };
  }

  /** Forest's supersede-pending policy; cancel_in_progress (refused) now and then. */
  #supersedeConfig(target: string): WireConfig {
    return { kind: "supersede", target: this.#spell(target), sameBranch: this.#chance(0.5), cancelInProgress: this.#chance(0.06) };
  }

  /** One to three rules: groups of the organisation (existing or not) and minimum roles, now and then invalid. */
  #rules(project?: ProjectRef): WireRule[] {
    const org = (project ?? this.#projects[0]!).organisation;
    // Mostly groups that have members, so that ruled policies pass the configuration check and can open.
    const named = this.#model.groupNames(org);
    const staffed = named.filter((g) => this.#model.members(org, g).length > 0);
    const known = staffed.length > 0 && this.#chance(0.8) ? staffed : named;
    const n = this.#chance(0.15) ? 3 : 1 + Math.floor(this.#rand() * 2);
    const rules: WireRule[] = [];
    const used = new Set<string>();
    for (let i = 0; i < n; i++) {
      const required = this.#chance(0.03) ? this.#pick([0, 101]) : this.#pick([1, 1, 1, 2]);
      let rule: WireRule;
      if (this.#chance(0.65)) {
        const group = known.length > 0 && this.#chance(0.85) ? this.#pick(known) : this.#pick(GROUPS);
        rule = { group, minRole: this.#chance(0.03) ? "member" : "", required };
      } else rule = { group: "", required: this.#chance(0.03) ? 0 : 1, minRole: this.#chance(0.04) ? this.#pick(["viewer", "owner", ""]) : this.#pick(["member", "maintainer", "admin"]) };
      const id = `${rule.group}|${rule.minRole}`;
      // The spec says nothing of a rule given twice: the model never sends one.
      if (used.has(id)) continue;
      used.add(id);
      rules.push(rule);
    }
    return rules;
  }

  /**
   * Prefers an environment the project's policies use (so that commands meet
   * the gate rather than an empty one), else one of `fallback`.
   */
  #envFor(p: ProjectRef, kind: "approval" | "supersede" | "any", side: "target" | "source", fallback: readonly string[]): string {
    const used = this.#model.environments(p, kind, side);
    return used.length > 0 && this.#chance(0.75) ? this.#pick(used) : this.#pick(fallback);
  }

  /** In a project that declares environments, often a name it does not declare; else `otherwise()`. */
  #undeclaredOr(project: ProjectRef, otherwise: () => string): string {
    const declared = this.#model.declared(project);
    const undeclared = ["prdo", ...CANONICAL].filter((e) => declared !== undefined && !declared.includes(e));
    return undeclared.length > 0 && this.#chance(0.3) ? this.#pick(undeclared) : otherwise();
  }

  #steps = 0;

  /** The next command; `now` (ms) places deployments' finish times around the server's clock. */
  next(now: number): Command {
    this.#now = now;
    // Each sequence opens with a few policies and a release in its main project, so that its commands meet a gate.
    const step = this.#steps++;
    if (this.#theme === "rules" && step < 6) {
      // A group with members (one an identity-provider group), then a ruled policy and a release.
      const main = this.#projects[0]!;
      const org = main.organisation;
      if (step === 0) return { kind: "createGroup", caller: ADMIN_OF[org]!, organisation: org, name: "sre", idp: this.#chance(0.3) ? "oncall" : "" };
      if (step === 1 || step === 2)
        return { kind: "addMember", caller: ADMIN_OF[org]!, organisation: org, group: "sre", user: this.#pick(["alice", "bob", "dave", "max", "carol"]), ...this.#scope(main, 0.8) };
      if (step === 3)
        return this.#chance(0.5)
          ? { kind: "createGroup", caller: ADMIN_OF[org]!, organisation: org, name: "sec", idp: this.#chance(0.7) ? "sec-idp" : "" }
          : { kind: "addMember", caller: ADMIN_OF[org]!, organisation: org, group: "sre", user: this.#pick(["alice", "bob", "dave", "max", "carol"]), ...this.#scope(main, 0.9) };
      if (step === 4) return { kind: "createPolicy", caller: ADMIN_OF[org]!, project: main, name: this.#policyName(main), config: this.#config() };
      return this.#register(main);
    }
    // Issue 13: a gate with the sequence's timeout, a release that asks for approval and a vote; for
    // supersede, the same gate with a supersede policy on its environment and releases on few branches.
    if ((this.#theme === "requests" && step < 7) || (this.#theme === "supersede" && step < 6)) {
      const main = this.#projects[0]!;
      const admin = ADMIN_OF[main.organisation]!;
      this.#target ??= this.#pick(TARGETS);
      const gate: WireConfig = { kind: "approval", target: this.#target, required: 1 + Math.floor(this.#rand() * 2), ...this.#requestOptions() };
      if (step === 0) {
        this.#gateRejects = gate.kind === "approval" && gate.rejectBlocks === true;
        return { kind: "createPolicy", caller: admin, project: main, name: this.#policyName(main), config: gate };
      }
      if (this.#theme === "supersede" && step === 1)
        return { kind: "createPolicy", caller: admin, project: main, name: this.#policyName(main), config: this.#supersedeConfig(this.#target) };
      // Requests: ask, vote, let time pass (past a maximum age or the timeout, or not), look.
      // On a reject_blocks gate, often a rejection: an eligible one rejects the request.
      if (this.#theme === "requests" && step === 4) return this.#vote(this.#gateRejects && this.#chance(0.5) ? "rejected" : undefined);
      if (this.#theme === "requests" && step === 5) return { kind: "advance", seconds: this.#pick([30, 150, 700, 1000]) };
      if (this.#theme === "requests" && step === 6) return this.#evaluate();
      if (step === 1 || step === 2 || step === 4) return this.#register(main);
      if (step === 3) {
        const id = [...this.#model.intents.values()].at(-1)?.id ?? this.uuid();
        this.#focus = { id, project: main, environment: this.#target };
        return { kind: "requestApproval", caller: this.#pick(this.#servicesOf(main.organisation)), project: main, id, environment: this.#target };
      }
      return this.#requestCommand();
    }
    // Then two votes and an evaluation on the latest release, so that ruled gates get the chance to open.
    if (this.#theme === "rules" && (step === 6 || step === 7)) return this.#vote();
    if (this.#theme === "rules" && step === 8) return this.#evaluate();
    if (step < 3 && this.#chance(0.8))
      return { kind: "createPolicy", caller: ADMIN_OF.acme!, project: this.#projects[0]!, name: this.#policyName(this.#projects[0]!), config: this.#config() };
    if (step === 3 && this.#theme !== "rules") return this.#register(this.#projects[0]);
    // Issue 13: approval requests (asked for, read, cancelled), more of them in their own sequences.
    const share = this.#theme === "requests" ? 0.3 : this.#theme === "supersede" ? 0.25 : 0.07;
    if (this.#chance(share)) return this.#requestCommand();
    const d = this.#rand();
    // Issue 12: the directory (more of it in rules sequences) and break-glass, then issue 11's mix.
    if (d < (this.#theme === "rules" ? 0.2 : 0.1)) return this.#directoryCommand();
    if (d < (this.#theme === "rules" ? 0.24 : 0.13)) return this.#breakGlass();
    const r = this.#rand();
    if (r < 0.05) return this.#setEnvs();
    if (r < 0.07) {
      const project = this.#project();
      return { kind: "getEnvs", caller: this.#caller(this.#membersOf(project.organisation)), project };
    }
    if (r < 0.17) {
      const project = this.#project();
      return { kind: "createPolicy", caller: this.#caller([ADMIN_OF[project.organisation]!], 0.85), project, name: this.#policyName(project), config: this.#config(project) };
    }
    if (r < 0.22) {
      const project = this.#project();
      const enabled = this.#chance(0.6) ? this.#chance(0.5) : undefined;
      const config = this.#chance(0.5) ? this.#config(project) : undefined;
      const name = this.#pick([...this.#model.policyNames(project), ...POLICY_NAMES]);
      return { kind: "updatePolicy", caller: this.#caller([ADMIN_OF[project.organisation]!], 0.85), project, name, enabled, config };
    }
    if (r < 0.24) {
      const project = this.#project();
      return { kind: "deletePolicy", caller: this.#caller([ADMIN_OF[project.organisation]!], 0.85), project, name: this.#pick(POLICY_NAMES) };
    }
    if (r < 0.33) return this.#register();
    if (r < 0.35) {
      const { id, project } = this.#intent();
      return { kind: "getIntent", caller: this.#caller(this.#membersOf(project.organisation)), project, id };
    }
    if (r < 0.48) return this.#deploy(now);
    if (r < 0.63) return this.#vote();
    if (r < 0.66) {
      const { id, project } = this.#intent();
      const environment = this.#spell(this.#envFor(project, "approval", "target", TARGETS));
      return { kind: "state", caller: this.#caller(this.#servicesOf(project.organisation)), project, id, environment };
    }
    return this.#rest(r);
  }

  /** The environment the supersede and requests sequences gate. */
  #target: string | undefined;
  /** The intent+environment a request command last touched: votes often follow it (on a cancelled request, say). */
  #focus: { id: string; project: ProjectRef; environment: string } | undefined;

  /** RequestApproval, GetApprovalRequest or CancelApprovalRequest on a known intent (in supersede sequences also a new release). */
  #requestCommand(): Command {
    if (this.#theme === "supersede" && this.#chance(0.3)) return this.#register(this.#projects[0]);
    // Requests sequences move the clock more, so that requests expire and approvals age under their eyes.
    if (this.#theme === "requests" && this.#chance(0.15)) return { kind: "advance", seconds: this.#pick([60, 150, 300, 900]) };
    if (this.#theme === "requests" && this.#focus !== undefined && this.#chance(0.2)) return this.#evaluate();
    const { id, project } = this.#intent();
    const org = project.organisation;
    const environment = this.#spell(this.#undeclaredOr(project, () => this.#envFor(project, "approval", "target", TARGETS)));
    const r = this.#rand();
    this.#focus = { id, project, environment };
    if (r < 0.4 && this.#theme === "requests" && this.#chance(0.3)) return this.#vote();
    if (r < 0.4)
      return { kind: "requestApproval", caller: this.#caller([...this.#servicesOf(org), ...this.#membersOf(org)], 0.9), project, id, environment };
    if (r < 0.72) return { kind: "getRequest", caller: this.#caller(this.#membersOf(org)), project, id, environment };
    // Cancel: by the author or registrant, the admin, or anyone (a stranger is refused).
    const intent = this.#model.intents.get(id);
    const parties = intent === undefined ? [] : [intent.author, intent.registrant].filter((c) => CALLERS[c] !== undefined);
    const caller = parties.length > 0 && this.#chance(0.45) ? this.#pick(parties) : this.#chance(0.35) ? ADMIN_OF[org]! : this.#pick(ALL_CALLERS);
    return { kind: "cancelRequest", caller, project, id, environment, reason: this.#chance(0.5) ? "wrong build" : undefined };
  }

  /** Whether the requests sequence's first gate has reject_blocks. */
  #gateRejects = false;

  #vote(forced?: "approved" | "rejected"): Command {
    {
      const focus = this.#focus !== undefined && this.#chance(0.4) ? this.#focus : undefined;
      const { id, project } = focus ?? this.#intent();
      const decision = forced ?? (this.#chance(0.75) ? "approved" : "rejected");
      // The intent's author and registrant are the voters four eyes are about.
      const intent = this.#model.intents.get(id);
      const involved = intent === undefined ? [] : [intent.author, intent.registrant].filter((c) => CALLERS[c] !== undefined);
      // On a ruled gate, often someone a rule names (a member of a group, or a maintainer or admin).
      const named = this.#model.groupNames(project.organisation).flatMap((g) => this.#model.members(project.organisation, g));
      const eligible = [...named, ADMIN_OF[project.organisation]!, "max"].filter((c) => CALLERS[c] !== undefined);
      const caller =
        involved.length > 0 && this.#chance(0.3)
          ? involved[this.#chance(0.65) ? involved.length - 1 : 0]!
          : this.#theme === "rules" && this.#chance(0.6)
            ? this.#pick(eligible)
            : this.#caller(this.#membersOf(project.organisation), 0.85);
      const bypass = decision === "approved" && this.#chance(involved.includes(caller) ? 0.4 : 0.12);
      const environment =
        focus?.environment ?? this.#spell(this.#undeclaredOr(project, () => this.#envFor(project, "approval", "target", TARGETS)));
      if (this.#theme === "requests" || this.#theme === "supersede") this.#focus = { id, project, environment };
      return {
        kind: "vote",
        caller,
        project,
        id,
        environment,
        decision,
        // force_bypass: mostly where four eyes would refuse (the admin override), sometimes anywhere.
        bypass,
        // A bypass needs a reason of 10 characters (issue 12): mostly given, sometimes too short.
        comment: bypass ? (this.#chance(0.7) ? "hotfix for incident 42" : this.#pick(COMMENTS)) : this.#chance(0.1) ? this.#pick(COMMENTS) : undefined,
      };
    }
  }

  #rest(r: number): Command {
    if (r < 0.68) {
      const project = this.#project();
      const kind = this.#chance(0.7) ? "history" : "watch";
      const environment = this.#chance(0.3) ? "" : this.#spell(this.#pick(TARGETS));
      return { kind, caller: this.#caller(this.#membersOf(project.organisation)), project, environment };
    }
    if (r < 0.76) return { kind: "advance", seconds: this.#pick([1, 10, 29, 30, 59, 60, 61, 3600]) };
    return this.#evaluate();
  }

  /** A scope for a membership or grant in `p`: mostly valid, sometimes expiring, now and then malformed. */
  #scope(p: ProjectRef, valid = 0.9): WireScope {
    const expiresAt = this.#chance(0.35)
      ? this.#pick([this.#now + 30_000, this.#now + 60_000, this.#now + 61_000, this.#now + 3_600_000, this.#now, this.#now - 1_000])
      : undefined;
    const at = expiresAt === undefined ? {} : { expiresAt };
    if (this.#chance(valid)) {
      const r = this.#rand();
      if (r < 0.4) return { scope: "organisation", scopeId: "", ...at };
      if (r < 0.75) return { scope: "project", scopeId: p.project, ...at };
      return { scope: "environment", scopeId: `${p.project}/${this.#spell(this.#pick(TARGETS))}`, ...at };
    }
    return this.#pick<WireScope>([
      { scope: "organisation", scopeId: p.project, ...at },
      { scope: "project", scopeId: "", ...at },
      { scope: "environment", scopeId: "", ...at },
      { scope: "environment", scopeId: p.project, ...at },
      { scope: "environment", scopeId: `${p.project}/prod `, ...at },
      { scope: "team", scopeId: "", ...at },
      { scope: "project", scopeId: this.#projects[1]!.project, ...at },
    ]);
  }

  #now = 0;

  /** A directory command in one of the sequence's organisations, mostly by its admin. */
  #directoryCommand(): Command {
    const project = this.#project();
    const org = project.organisation;
    const admin = ADMIN_OF[org]!;
    const writer = this.#caller([admin], 0.85);
    const groups = this.#model.groupNames(org);
    const group = () => (groups.length > 0 && this.#chance(0.85) ? this.#pick(groups) : this.#chance(0.05) ? "Bad Name" : this.#pick(GROUPS));
    const r = this.#rand();
    if (r < 0.12) {
      const idp = this.#chance(0.02) ? "x".repeat(201) : this.#pick(IDP);
      return { kind: "createGroup", caller: writer, organisation: org, name: this.#chance(0.04) ? "-sre" : this.#pick(GROUPS), idp };
    }
    if (r < 0.16) return { kind: "deleteGroup", caller: writer, organisation: org, name: group() };
    if (r < 0.23) return { kind: "listGroups", caller: this.#caller(this.#membersOf(org)), organisation: org };
    if (r < 0.5) return { kind: "addMember", caller: writer, organisation: org, group: group(), user: this.#chance(0.03) ? "" : this.#pick(USERS), ...this.#scope(project) };
    if (r < 0.6) {
      const g = group();
      const members = this.#model.members(org, g);
      return { kind: "removeMember", caller: writer, organisation: org, group: g, user: members.length > 0 && this.#chance(0.8) ? this.#pick(members) : this.#pick(USERS) };
    }
    if (r < 0.82) {
      const scope = this.#scope(project);
      // An outsider (no role in the organisation) gets grants only for a project: that covers every request
      // there, where an environment grant would leave reads without an environment in doubt.
      const insiders = this.#membersOf(org).filter((u) => ["viewer", "member", "maintainer", "admin"].includes(CALLERS[u]!.roles[baseOrg(org)]!));
      let user = this.#chance(0.8) ? this.#pick(insiders) : this.#pick(USERS);
      if (!insiders.includes(user) && scope.scope !== "project") user = this.#pick(insiders);
      // Admin only for the organisation or a project (an environment-only admin would leave policy writes in doubt).
      const role = this.#chance(0.03) ? this.#pick(["owner", ""]) : this.#pick(scope.scope === "environment" ? ["viewer", "member", "maintainer"] : ["member", "maintainer", "maintainer", "admin"]);
      return { kind: "grantRole", caller: writer, organisation: org, ref: `s${this.#seq}-g${this.#grants++}`, user, role, ...scope };
    }
    if (r < 0.9) {
      const refs = this.#model.grantRefs(org);
      return { kind: "revokeGrant", caller: writer, organisation: org, ref: refs.length > 0 && this.#chance(0.85) ? this.#pick(refs) : `s${this.#seq}-none` };
    }
    return { kind: "listGrants", caller: this.#caller(this.#membersOf(org)), organisation: org, user: this.#chance(0.5) ? "" : this.#pick(USERS) };
  }

  /** Break-glass on a known intent, mostly by the admin with a reason. */
  #breakGlass(): Command {
    const { id, project } = this.#intent();
    const org = project.organisation;
    return {
      kind: "breakGlass",
      caller: this.#caller([ADMIN_OF[org]!], 0.8),
      project,
      id,
      environment: this.#spell(this.#undeclaredOr(project, () => this.#envFor(project, "approval", "target", TARGETS))),
      reason: this.#chance(0.8) ? "prod is down, incident 42" : this.#pick(COMMENTS),
    };
  }

  /** Mostly a name the project does not use yet (ALREADY_EXISTS now and then). */
  #policyName(project: ProjectRef): string {
    const used = this.#model.policyNames(project);
    const free = POLICY_NAMES.filter((n) => !used.includes(n));
    return free.length > 0 && this.#chance(0.8) ? this.#pick(free) : this.#pick(POLICY_NAMES);
  }

  #setEnvs(): Command {
    const project = this.#project();
    const caller = this.#caller([ADMIN_OF[project.organisation]!], 0.85);
    if (this.#chance(0.15)) return { kind: "setEnvs", caller, project, environments: [] };
    const names = CANONICAL.filter(() => this.#chance(0.7));
    // Shuffle: the stored list keeps the given order.
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(this.#rand() * (i + 1));
      [names[i], names[j]] = [names[j]!, names[i]!];
    }
    const environments = names.map((n) => (this.#chance(0.9) ? n : this.#spell(n)));
    if (this.#chance(0.08) && names.length > 0) environments.push(names[0]!.toUpperCase()); // a duplicate after folding
    return { kind: "setEnvs", caller, project, environments };
  }

  #register(fresh?: ProjectRef): Command {
    const reuse = [...this.#model.intents.values()];
    if (fresh === undefined && reuse.length > 0 && this.#chance(0.1)) {
      // Re-registration of a known id in its own project: same content by someone else, or changed content.
      const i = this.#pick(reuse);
      const project = this.#projects.find((p) => `${p.organisation}/${p.project}` === i.project)!;
      const org = project.organisation;
      return {
        kind: "register",
        caller: this.#chance(0.5) ? i.request.caller : this.#caller([ADMIN_OF[org]!, ...this.#servicesOf(org)]),
        project,
        id: i.id,
        author: i.request.authorField,
        branch: this.#chance(0.7) ? i.branch : this.#pick(BRANCHES),
        version: i.request.version,
      };
    }
    const project = fresh ?? this.#project();
    const org = project.organisation;
    const r = this.#rand();
    let caller: string;
    let author: string;
    if (r < 0.3) {
      caller = this.#pick(this.#membersOf(org));
      author = this.#chance(0.5) ? "" : this.#chance(0.8) ? caller : this.#pick(AUTHORS);
    } else if (r < 0.62) {
      caller = ADMIN_OF[org]!;
      author = this.#chance(0.8) ? this.#pick(AUTHORS.filter((a) => a !== caller)) : "";
    } else if (r < 0.9) {
      caller = this.#pick(this.#servicesOf(org));
      author = this.#pick(AUTHORS);
    } else {
      caller = this.#pick(ALL_CALLERS);
      author = this.#chance(0.5) ? "" : this.#pick(AUTHORS);
    }
    // Supersede sequences release on few branches, so that a newer release often shares an older one's.
    const branch = this.#pick(this.#theme === "supersede" ? ["main", "main", "release/1.2", ""] : BRANCHES);
    return { kind: "register", caller, project, id: this.uuid(), author, branch, version: this.#pick(["1.0.0", "2.1.0"]) };
  }

  #deploy(now: number): Command {
    const { id, project } = this.#intent();
    const created = this.#model.intents.get(id)?.createdAt ?? now;
    const finishedAt = this.#pick<number | undefined>([
      undefined,
      now,
      now - 5_000,
      created, // valid, however long ago: soak must still count from now
      created,
      created + 1_000,
      created - 1_000, // backdated
      Date.parse("2000-01-01T00:00:00Z"),
      now + 60_000, // skew allowed
      now + 61_000,
      now + 3_600_000,
    ]);
    const r = this.#rand();
    const status = r < 0.8 ? "succeeded" : r < 0.97 ? "failed" : "unspecified";
    const org = project.organisation;
    return {
      kind: "deploy",
      caller: this.#caller([...this.#servicesOf(org), ...this.#servicesOf(org), ADMIN_OF[org]!, "max"], 0.85),
      project,
      id,
      // Supersede sequences also deploy to the supersede target: a deployed release is not superseded there.
      environment: this.#spell(
        this.#undeclaredOr(project, () =>
          this.#theme === "supersede" && this.#chance(0.35) ? this.#envFor(project, "supersede", "target", TARGETS) : this.#envFor(project, "any", "source", SOURCES),
        ),
      ),
      status,
      finishedAt,
    };
  }

  #evaluate(): Command {
    // Often the intent+environment a request command or vote last touched: its request's life is what counts.
    const focus = this.#focus;
    if (focus !== undefined && this.#chance(0.35)) {
      const org = focus.project.organisation;
      return { kind: "evaluate", caller: this.#caller([...this.#servicesOf(org), ...this.#membersOf(org)], 0.9), project: focus.project, environment: focus.environment, id: focus.id };
    }
    const wantIntent = this.#chance(0.75);
    const { id, project } = wantIntent ? this.#intent() : { id: undefined, project: this.#project() };
    const intent = id === undefined ? undefined : this.#model.intents.get(id);
    let branch: string | undefined;
    const r = this.#rand();
    if (intent !== undefined && r < 0.3) branch = intent.branch;
    else if (r < 0.7) branch = this.#pick(BRANCHES);
    const org = project.organisation;
    const target = this.#undeclaredOr(project, () =>
      this.#chance(0.85) ? this.#envFor(project, "any", "target", TARGETS) : this.#pick(["dev", "qa", "prdo"]),
    );
    return {
      kind: "evaluate",
      caller: this.#caller([...this.#servicesOf(org), ...this.#membersOf(org)], 0.9),
      project,
      environment: this.#spell(target),
      branch,
      id,
    };
  }
}

/** This sequence's projects: both its organisations (named for it: the directory is organisation-wide), two projects each. */
export function sequenceProjects(seq: number): ProjectRef[] {
  return ORGS.flatMap((org) => ["web", "api"].map((project) => ({ organisation: `${org}-s${seq}`, project })));
}

function ruleValid(r: WireRule): boolean {
  return (r.group === "") !== (r.minRole === "") && r.required >= 1 && r.required <= 100;
}
