/**
 * Random commands for the gate-safety test, drawn to play the adversary of
 * issue 11: several organisations and projects, intents registered by members,
 * admins and services, backdated and future deployments, request branches
 * that differ from the intent's, look-alike environment names, declared
 * environments, service voters and votes through the wrong project. Most
 * commands are plausible (the right admin, a known intent) so that sequences
 * reach states where the gate could open; the rest probe the edges.
 */
import type { GateModel } from "./gate-model.js";
import { PATTERNS } from "./gate-model.js";
import { CALLERS, type Command, ORGS, type ProjectRef, type WireConfig } from "./model-commands.js";
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
const ADMIN_OF: Readonly<Record<string, string>> = { acme: "ada", globex: "gus" };
const ALL_CALLERS = Object.keys(CALLERS);

const FULL_WIDTH_OFFSET = 0xff41 - 0x61;
const CONFUSABLE: Readonly<Record<string, string>> = { o: "\u043e", a: "\u0430", e: "\u0435", p: "\u0440", d: "\u0501" };

export class CommandGenerator {
  readonly #rand: () => number;
  readonly #model: GateModel;
  readonly #projects: readonly ProjectRef[];

  /** The policy kind this sequence's policies lean to, so that each kind gets sequences where it can pass. */
  readonly #theme: WireConfig["kind"] | undefined;

  /** `projects`: this sequence's projects, acme's first (they get most commands). */
  constructor(rand: () => number, model: GateModel, projects: readonly ProjectRef[]) {
    this.#rand = rand;
    this.#model = model;
    this.#projects = projects;
    this.#theme = this.#pick(["soak", "approval", "branch", undefined] as const);
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
    return ALL_CALLERS.filter((c) => CALLERS[c]!.roles[org] !== undefined && !CALLERS[c]!.service);
  }

  #servicesOf(org: string): string[] {
    return ALL_CALLERS.filter((c) => CALLERS[c]!.roles[org] !== undefined && CALLERS[c]!.service);
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
    const themed = { soak: 0.5, approval: 0.1, branch: 0.9 }[this.#theme ?? "approval"];
    const r = this.#theme !== undefined && this.#chance(0.6) ? themed : this.#rand();
    if (r < 0.35) return { kind: "approval", target: this.#spell(target), required: 1 + Math.floor(this.#rand() * 2) };
    if (r < 0.7) {
      const source = this.#pick(SOURCES.filter((s) => s !== target));
      return { kind: "soak", target: this.#spell(target), source: this.#spell(source), seconds: this.#pick([1, 10, 30, 60, 60, 3600]) };
    }
    return { kind: "branch", target: this.#spell(target), pattern: this.#pick(Object.keys(PATTERNS)) };
  }

  /**
   * Prefers an environment the project's policies use (so that commands meet
   * the gate rather than an empty one), else one of `fallback`.
   */
  #envFor(p: ProjectRef, kind: "approval" | "any", side: "target" | "source", fallback: readonly string[]): string {
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
    // Each sequence opens with a few policies and a release in its main project, so that its commands meet a gate.
    const step = this.#steps++;
    if (step < 3 && this.#chance(0.8))
      return { kind: "createPolicy", caller: ADMIN_OF.acme!, project: this.#projects[0]!, name: this.#policyName(this.#projects[0]!), config: this.#config() };
    if (step === 3) return this.#register(this.#projects[0]);
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
    if (r < 0.63) {
      const { id, project } = this.#intent();
      const decision = this.#chance(0.75) ? "approved" : "rejected";
      // The intent's author and registrant are the voters four eyes are about.
      const intent = this.#model.intents.get(id);
      const involved = intent === undefined ? [] : [intent.author, intent.registrant].filter((c) => CALLERS[c] !== undefined);
      const caller = involved.length > 0 && this.#chance(0.3) ? involved[this.#chance(0.65) ? involved.length - 1 : 0]! : this.#caller(this.#membersOf(project.organisation), 0.85);
      return {
        kind: "vote",
        caller,
        project,
        id,
        environment: this.#spell(this.#undeclaredOr(project, () => this.#envFor(project, "approval", "target", TARGETS))),
        decision,
        // force_bypass: mostly where four eyes would refuse (the admin override), sometimes anywhere.
        bypass: decision === "approved" && this.#chance(involved.includes(caller) ? 0.4 : 0.12),
      };
    }
    if (r < 0.66) {
      const { id, project } = this.#intent();
      const environment = this.#spell(this.#envFor(project, "approval", "target", TARGETS));
      return { kind: "state", caller: this.#caller(this.#servicesOf(project.organisation)), project, id, environment };
    }
    if (r < 0.68) {
      const project = this.#project();
      const kind = this.#chance(0.7) ? "history" : "watch";
      const environment = this.#chance(0.3) ? "" : this.#spell(this.#pick(TARGETS));
      return { kind, caller: this.#caller(this.#membersOf(project.organisation)), project, environment };
    }
    if (r < 0.76) return { kind: "advance", seconds: this.#pick([1, 10, 29, 30, 59, 60, 61, 3600]) };
    return this.#evaluate();
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
    return { kind: "register", caller, project, id: this.uuid(), author, branch: this.#pick(BRANCHES), version: this.#pick(["1.0.0", "2.1.0"]) };
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
      caller: this.#caller([...this.#servicesOf(org), ...this.#servicesOf(org), ADMIN_OF[org]!], 0.85),
      project,
      id,
      environment: this.#spell(this.#undeclaredOr(project, () => this.#envFor(project, "any", "source", SOURCES))),
      status,
      finishedAt,
    };
  }

  #evaluate(): Command {
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

/** This sequence's projects: both organisations, two projects each, names unique to the sequence. */
export function sequenceProjects(seq: number): ProjectRef[] {
  return ORGS.flatMap((organisation) => ["web", "api"].map((p) => ({ organisation, project: `${p}-s${seq}` })));
}
