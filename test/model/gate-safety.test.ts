import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SuiteCounters } from "../support/reliability-report.js";
import { ManualClock, startTestServer, type TestServer, token } from "../support/server.js";
import { type Expectation, GateModel } from "./gate-model.js";
import { CALLERS, type Command, READ_ONLY, show } from "./model-commands.js";
import { compare, Divergence, type EvaluationAnswer } from "./model-compare.js";
import { CommandGenerator, prng, sequenceProjects } from "./model-generator.js";
import { Wire } from "./model-wire.js";

// Model-based gate safety, played as an adversary (issue 11): random
// sequences of declarations, policy changes, intents registered by members,
// admins and services, deployments dated by the caller, votes by anyone
// through any project, look-alike environment names and clock advances go to
// the reference model and to the real service over gRPC. Every answer must
// agree, and above all the service must never pass a release the model
// holds back.
//
// MODEL_RUNS (sequences, default 300), MODEL_STEPS (commands per sequence,
// default 20), MODEL_LANES (sequences run side by side, default 4) and
// MODEL_SEED (default: the time) reproduce or lengthen a run; a failure
// prints them with the sequence, the step and its trace. MODEL_SURVEY=1
// goes on after a disagreement (with the next sequence, or the next command
// when the disagreement was on a read) and lists every kind of disagreement
// at the end; the test still fails if there was one.

const RUNS = Number(process.env.MODEL_RUNS ?? 300);
const STEPS = Number(process.env.MODEL_STEPS ?? 20);
const SEED = Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31);
const LANES = Math.max(1, Number(process.env.MODEL_LANES ?? 4));
const SURVEY = process.env.MODEL_SURVEY === "1";

const REPRODUCE = `MODEL_SEED=${SEED} MODEL_RUNS=${RUNS} MODEL_STEPS=${STEPS} MODEL_LANES=${LANES}`;
/** Each sequence's own random stream. */
const sequenceSeed = (seq: number) => (SEED + Math.imul(seq + 1, 0x9e3779b9)) >>> 0;

const counters = new SuiteCounters("model-gate-safety");
const clock = new ManualClock();
let server: TestServer;
let wire: Wire;

beforeAll(async () => {
  console.log(`gate-safety model: ${REPRODUCE}`);
  server = await startTestServer({ clock });
  const tokens = new Map<string, string>();
  for (const [name, c] of Object.entries(CALLERS)) tokens.set(name, await token({ sub: c.sub, orgs: { ...c.roles }, service: c.service }));
  wire = new Wire((t) => server.grpc(t), tokens);
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

const stats = {
  sequences: 0,
  commands: 0,
  refusals: 0,
  evaluations: 0,
  passes: 0,
  holds: 0,
  verdicts: 0,
  verdictsPassed: 0,
  votes: 0,
};
/** Adversarial situations the run reached, by name: a full run must reach each. */
const reached = new Map<string, number>();
const divergences = new Map<string, { count: number; example: string }>();
/** Wall time of the service's answers, by command kind (ms, count). */
const timing = new Map<string, { ms: number; n: number }>();

function tag(name: string): void {
  reached.set(name, (reached.get(name) ?? 0) + 1);
}

/** Names what a command tries, from the command and the model's expectation. */
function tagCommand(cmd: Command, exp: Expectation, model: GateModel, now: number): void {
  const refused = exp.codes[0] !== "ok";
  const rule = exp.message?.includes ?? "";
  if (rule.includes("is not a valid environment name")) tag("look-alike or malformed environment refused");
  if (exp.codes.includes("FailedPrecondition")) tag(`${cmd.kind}: undeclared environment refused`);
  if (cmd.kind === "deploy") {
    const intent = model.intents.get(cmd.id);
    if (cmd.finishedAt !== undefined && cmd.finishedAt > now + 60_000) tag("deploy: finished_at in the future refused");
    if (rule.includes("was registered")) tag("deploy: backdated before registration refused");
    if (!refused && intent !== undefined && cmd.finishedAt !== undefined && cmd.finishedAt < now - 60_000)
      tag("deploy: finished long ago, accepted (soak from now)");
  }
  if (cmd.kind === "vote") {
    if (CALLERS[cmd.caller]!.service) tag("vote by a service");
    const intent = model.intents.get(cmd.id);
    if (intent !== undefined && intent.project !== `${cmd.project.organisation}/${cmd.project.project}`) tag("vote through the wrong project");
    if (rule.includes("four eyes cover the registrant")) tag("vote: registrant refused (four eyes)");
    if (!refused && (exp.value as { kind?: string }).kind === "admin_override") tag("vote: admin override");
  }
  if (cmd.kind === "register" && !refused) {
    const c = CALLERS[cmd.caller]!;
    tag(`register by ${c.service ? "service" : c.roles[cmd.project.organisation]}${cmd.author !== "" && cmd.author !== c.sub ? " for another author" : ""}`);
  }
  if (cmd.kind !== "advance" && exp.codes[0] === "PermissionDenied" && CALLERS[cmd.caller]!.roles[cmd.project.organisation] === undefined)
    tag("caller from another organisation refused");
  if (cmd.kind === "evaluate" && !refused) {
    const v = exp.value as { evaluations: { name: string; reason?: string }[] };
    if (v.evaluations.some((e) => e.name === "declared-environments")) tag("evaluate: undeclared target");
    if (v.evaluations.some((e) => e.reason?.startsWith("request branch"))) tag("evaluate: request branch differs from the intent's");
  }
  if (cmd.kind === "setEnvs" && !refused) tag(cmd.environments.length === 0 ? "declaration cleared" : "environments declared");
}

function record(d: Divergence, seq: number, step: number, trace: string[]): void {
  const example = `${REPRODUCE}: sequence ${seq}, step ${step}\n${d.message}\n${trace.join("\n")}`;
  const entry = divergences.get(d.category);
  if (entry === undefined) divergences.set(d.category, { count: 1, example });
  else entry.count++;
}

/**
 * One sequence, stepped by the run loop. A step is one command at the
 * round's `now`; an advance is returned to the loop, which moves the shared
 * clock once every lane has stepped.
 */
class SequenceRun {
  readonly #seq: number;
  readonly #model = new GateModel();
  readonly #generator: CommandGenerator;
  readonly #trace: string[] = [];
  #step = 0;

  constructor(seq: number) {
    this.#seq = seq;
    this.#generator = new CommandGenerator(prng(sequenceSeed(seq)), this.#model, sequenceProjects(seq));
  }

  /** Runs one command; answers the seconds to advance the clock by, or "done". */
  async step(now: number): Promise<number | "done"> {
    if (this.#step >= STEPS) return "done";
    const step = this.#step++;
    const trace = this.#trace;
    const cmd = this.#generator.next(now);
    stats.commands++;
    if (cmd.kind === "advance") {
      trace.push(`#${step} advance ${cmd.seconds}s`);
      return cmd.seconds;
    }
    const exp = this.#model.apply(cmd, now);
    tagCommand(cmd, exp, this.#model, now);
    const sent = performance.now();
    const got = await wire.send(cmd);
    const t = timing.get(cmd.kind) ?? { ms: 0, n: 0 };
    t.ms += performance.now() - sent;
    t.n++;
    timing.set(cmd.kind, t);
    trace.push(`#${step} ${show(cmd, now)} → ${got.code}${got.code === "ok" ? "" : ` ${JSON.stringify(got.message)}`}`);
    if (cmd.kind === "vote") stats.votes++;
    if (cmd.kind === "evaluate" && got.code === "ok") {
      const g = got.value as EvaluationAnswer;
      stats.evaluations++;
      if (g.allPassed && g.evaluations.length > 0) stats.passes++;
      if (!g.allPassed) stats.holds++;
      stats.verdicts += g.evaluations.length;
      stats.verdictsPassed += g.evaluations.filter((e) => e.passed).length;
      trace[trace.length - 1] += ` all_passed=${g.allPassed} ${g.evaluations.map((e) => `${e.name}:${e.passed}`).join(",")}`;
    }
    if (got.code !== "ok") stats.refusals++;
    try {
      compare(cmd, exp, got);
    } catch (err) {
      if (!(err instanceof Divergence)) throw err;
      if (!SURVEY)
        throw new Error(
          `${err.unsafe ? "UNSAFE PASS: " : ""}${err.category}\n${REPRODUCE}: sequence ${this.#seq}, step ${step}\n${err.message}\ntrace of sequence ${this.#seq} (the clock also moves with the other lanes' advances):\n${trace.join("\n")}`,
        );
      record(err, this.#seq, step, trace);
      // After a read the two sides still agree on the state; after a write they may not.
      if (!READ_ONLY.has(cmd.kind)) return "done";
    }
    return 0;
  }
}

/**
 * Runs every sequence, LANES at a time in lock step: each round every lane
 * sends one command at the same `now`, then the clock moves by the sum of
 * the round's advances. Deterministic for a given seed, runs, steps and lanes.
 */
async function runAll(): Promise<void> {
  const lanes: SequenceRun[] = [];
  let next = 0;
  while (lanes.length > 0 || next < RUNS) {
    while (lanes.length < LANES && next < RUNS) lanes.push(new SequenceRun(next++));
    const now = clock.now().getTime();
    const results = await Promise.all(lanes.map((l) => l.step(now)));
    let advance = 0;
    for (let i = results.length - 1; i >= 0; i--) {
      const r = results[i]!;
      if (r === "done") {
        lanes.splice(i, 1);
        stats.sequences++;
      } else advance += r;
    }
    clock.advance(advance);
  }
}

describe("gate safety against the reference model (adversary of issue 11)", () => {
  it(`agrees on ${RUNS} random sequences of ${STEPS} commands (seed ${SEED})`, { timeout: 900_000 }, async () => {
    const started = performance.now();
    const cpu = process.cpuUsage();
    await runAll();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const used = process.cpuUsage(cpu);
    console.log(
      `gate-safety model: ${stats.sequences} sequences, ${stats.commands} commands in ${seconds}s (this process: ${((used.user + used.system) / 1e6).toFixed(1)} s CPU, server included); ${stats.evaluations} evaluations (${stats.passes} passes, ${stats.holds} holds); ${stats.refusals} refusals`,
    );
    console.log(`service time by command: ${[...timing].map(([k, t]) => `${k} ${t.n}× ${(t.ms / t.n).toFixed(1)} ms`).join(", ")}`);
    console.log(`reached: ${[...reached].map(([k, n]) => `${k} ×${n}`).join("; ")}`);
    if (divergences.size > 0) {
      const list = [...divergences].sort((a, b) => b[1].count - a[1].count);
      console.log(`${list.length} kinds of disagreement:\n${list.map(([k, v]) => `  ${v.count}× ${k}`).join("\n")}`);
      for (const [k, v] of list) console.log(`--- ${k}\n${v.example}\n`);
    }
    expect([...divergences.keys()]).toEqual([]);
    if (RUNS >= 300) {
      // The run is only meaningful if the gate both held and opened, and the adversary tried each trick.
      expect(stats.passes).toBeGreaterThan(0);
      expect(stats.holds).toBeGreaterThan(0);
      for (const trick of TRICKS) expect(reached.get(trick) ?? 0, trick).toBeGreaterThan(0);
    }
    counters.add("model-based command sequences", stats.sequences, "every answer equal to the model");
    counters.add("commands applied to model and service", stats.commands, `codes agree (${stats.refusals} expected refusals)`);
    counters.add("EvaluatePolicies compared with the model", stats.evaluations, `0 unsafe passes; ${stats.passes} legitimate passes`);
    counters.add("policy verdicts compared (soak, branch, approval, declared environments)", stats.verdicts, `each equal to the model; ${stats.verdictsPassed} passing`);
    counters.add("votes in model sequences", stats.votes, "four eyes (author and registrant), roles and counts agree");
  });
});

/** The adversary's tricks of issue 11 that a full run must have tried. */
const TRICKS = [
  "look-alike or malformed environment refused",
  "deploy: finished_at in the future refused",
  "deploy: backdated before registration refused",
  "deploy: finished long ago, accepted (soak from now)",
  "vote by a service",
  "vote through the wrong project",
  "vote: registrant refused (four eyes)",
  "vote: admin override",
  "register by member",
  "register by admin for another author",
  "register by service for another author",
  "caller from another organisation refused",
  "evaluate: undeclared target",
  "evaluate: request branch differs from the intent's",
  "environments declared",
  "createPolicy: undeclared environment refused",
  "vote: undeclared environment refused",
  "deploy: undeclared environment refused",
];
