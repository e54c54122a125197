import { randomUUID } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { DeploymentStatus, ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { SuiteCounters } from "../support/reliability-report.js";
import { ManualClock, startTestServer, type TestServer, token } from "../support/server.js";
import { type Expected, GateModel, type ModelConfig, type ModelEvaluation, PATTERNS } from "./gate-model.js";

// Model-based gate safety: random sequences of policy changes, intents,
// deployments, votes and clock advances go to the reference model and to the
// real service over gRPC; every answer must agree, and above all the service
// must never pass a release the model would hold back.
//
// MODEL_RUNS (sequences, default 100), MODEL_STEPS (default 30) and
// MODEL_SEED reproduce or lengthen a run; a failure prints the seed and steps.

const RUNS = Number(process.env.MODEL_RUNS ?? 100);
const STEPS = Number(process.env.MODEL_STEPS ?? 30);
const SEED = Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31);

const ORG = "acme";
const ADMINS = ["ada"];
const VOTERS = ["ada", "bob", "carol", "dave"];
const AUTHORS = ["ada", "bob", "alice"];
const ENVS = ["prod", "staging"];
const SOURCES = ["staging", "qa", "dev"];
const NAMES = ["a-gate", "b-gate", "c-soak", "d-branch", "e-any"];
const BRANCHES = ["main", "release/1.2", "feature/x", "hotfix", "mainline", ""];

/** mulberry32: small, seedable, good enough to pick commands. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const counters = new SuiteCounters("model-gate-safety");
const clock = new ManualClock();
let server: TestServer;
const tokens = new Map<string, string>();
let pipeline: string;
const stats = { sequences: 0, commands: 0, evaluations: 0, passes: 0, verdicts: 0, verdictsPassed: 0, votes: 0, rejectedCommands: 0 };

beforeAll(async () => {
  server = await startTestServer({ clock });
  for (const user of new Set([...VOTERS, ...AUTHORS]))
    tokens.set(user, await token({ sub: user, orgs: { [ORG]: ADMINS.includes(user) ? "admin" : "member" } }));
  pipeline = await token({ sub: "deploy-bot", orgs: { [ORG]: "member" }, service: true });
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

// One HTTP/2 session per token for the whole run (a new one per call costs more than the call).
const transports = new Map<string, Transport>();
function client<S extends DescService>(service: S, tok: string): Client<S> {
  const transport = transports.get(tok) ?? server.grpc(tok);
  transports.set(tok, transport);
  return createClient(service, transport);
}

function configToProto(c: ModelConfig) {
  switch (c.kind) {
    case "soak":
      return {
        policyType: PolicyType.SOAK_TIME,
        config: {
          case: "soakTime" as const,
          value: { sourceEnvironment: c.source, targetEnvironment: c.target, durationSeconds: BigInt(c.seconds) },
        },
      };
    case "branch":
      return {
        policyType: PolicyType.BRANCH_RESTRICTION,
        config: { case: "branchRestriction" as const, value: { targetEnvironment: c.target, branchPattern: c.pattern } },
      };
    case "approval":
      return {
        policyType: PolicyType.EXTERNAL_APPROVAL,
        config: { case: "externalApproval" as const, value: { targetEnvironment: c.target, requiredApprovals: c.required } },
      };
  }
}

/** Runs a call and returns "ok" or its code name. */
async function outcome(call: Promise<unknown>): Promise<Expected | string> {
  try {
    await call;
    return "ok";
  } catch (err) {
    const e = ConnectError.from(err);
    return Code[e.code] ?? String(e.code);
  }
}

async function runSequence(seq: number, rand: () => number): Promise<void> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const project = { organisation: ORG, project: `model-${seq}-${randomUUID().slice(0, 8)}` };
  const model = new GateModel(ADMINS);
  const admin = tokens.get("ada")!;
  const policies = (tok = admin) => client(PolicyService, tok);
  const releases = (tok = admin) => client(ReleaseService, tok);
  const log: string[] = [];

  const randomConfig = (): ModelConfig => {
    const target = pick(ENVS);
    const r = rand();
    if (r < 0.35) return { kind: "approval", target, required: 1 + Math.floor(rand() * 2) };
    if (r < 0.7) {
      const source = pick(SOURCES.filter((s) => s !== target));
      return { kind: "soak", target, source, seconds: pick([1, 30, 60, 3600]) };
    }
    return { kind: "branch", target, pattern: pick(Object.keys(PATTERNS)) };
  };
  const check = (what: string, expected: string, actual: string) => {
    log.push(`${what} → ${actual}`);
    if (actual !== "ok") stats.rejectedCommands++;
    if (actual !== expected)
      throw new Error(`seed ${SEED}, sequence ${seq}: ${what}: model ${expected}, service ${actual}\n${log.join("\n")}`);
  };
  const anyIntent = () => (model.intents.length === 0 ? randomUUID() : pick(model.intents).id);

  for (let step = 0; step < STEPS; step++) {
    stats.commands++;
    const r = rand();
    if (r < 0.12) {
      const name = pick(NAMES);
      const config = randomConfig();
      check(`create ${name} ${JSON.stringify(config)}`, model.createPolicy(name, config), await outcome(
        policies().createPolicy({ project, name, ...configToProto(config) }),
      ));
    } else if (r < 0.2) {
      const name = pick(NAMES);
      const change: { enabled?: boolean; config?: ModelConfig } = {};
      if (rand() < 0.6) change.enabled = rand() < 0.5;
      if (rand() < 0.5) change.config = randomConfig();
      const proto = change.config === undefined ? {} : { config: configToProto(change.config).config };
      check(`update ${name} ${JSON.stringify(change)}`, model.updatePolicy(name, change), await outcome(
        policies().updatePolicy({ project, name, enabled: change.enabled, ...proto }),
      ));
    } else if (r < 0.24) {
      const name = pick(NAMES);
      check(`delete ${name}`, model.deletePolicy(name), await outcome(policies().deletePolicy({ project, name })));
    } else if (r < 0.32) {
      const intent = { id: randomUUID(), author: pick(AUTHORS), branch: pick(BRANCHES) };
      check(`register ${JSON.stringify(intent)}`, model.registerIntent(intent), await outcome(
        releases().registerReleaseIntent({
          project,
          releaseIntentId: intent.id,
          authorUserId: intent.author,
          branch: intent.branch,
        }),
      ));
    } else if (r < 0.42) {
      const intentId = anyIntent();
      const env = pick(SOURCES);
      const succeeded = rand() < 0.8;
      const offset = pick([0, 0, -5, -30, -61, -3600, 30, 120]);
      const finishedAt = clock.now().getTime() + offset * 1000;
      check(
        `deploy ${intentId.slice(0, 8)} to ${env} ${succeeded ? "ok" : "failed"} at now${offset}s`,
        model.recordDeployment(intentId, env, succeeded, finishedAt, clock.now().getTime()),
        await outcome(
          releases(pipeline).recordDeployment({
            project,
            environment: env,
            releaseIntentId: intentId,
            status: succeeded ? DeploymentStatus.SUCCEEDED : DeploymentStatus.FAILED,
            finishedAt: new Date(finishedAt).toISOString(),
          }),
        ),
      );
    } else if (r < 0.62) {
      const voter = pick(VOTERS);
      const intentId = anyIntent();
      const env = pick(ENVS);
      const decision = rand() < 0.7 ? "approved" : "rejected";
      // force_bypass exists on approvals only.
      const bypass = decision === "approved" && rand() < 0.15;
      const req = { project, releaseIntentId: intentId, targetEnvironment: env };
      const client = policies(tokens.get(voter));
      stats.votes++;
      check(
        `${voter} ${decision}${bypass ? " (bypass)" : ""} ${intentId.slice(0, 8)} in ${env}`,
        model.vote(voter, intentId, env, decision, bypass),
        await outcome(
          decision === "approved"
            ? // A bypass needs a written reason (at least 10 characters).
              client.approveRelease({ ...req, forceBypass: bypass, ...(bypass ? { comment: "model: bypass reason" } : {}) })
            : client.rejectRelease(req),
        ),
      );
    } else if (r < 0.7) {
      const seconds = pick([1, 10, 29, 30, 59, 60, 61, 3600]);
      clock.advance(seconds);
      log.push(`advance ${seconds}s`);
    } else {
      await evaluate(project, model, pick, rand, log, seq);
    }
  }
}

async function evaluate(
  project: { organisation: string; project: string },
  model: GateModel,
  pick: <T>(xs: readonly T[]) => T,
  rand: () => number,
  log: string[],
  seq: number,
): Promise<void> {
  const target = pick(ENVS);
  const branch = rand() < 0.5 ? undefined : pick(BRANCHES);
  const intentId =
    rand() < 0.25 || model.intents.length === 0 ? (rand() < 0.1 ? randomUUID() : undefined) : pick(model.intents).id;
  const want = model.evaluate(target, branch, intentId, clock.now().getTime());
  const what = `evaluate ${target} branch=${branch} intent=${intentId?.slice(0, 8)}`;
  stats.evaluations++;
  let got: { evaluations: ModelEvaluation[]; allPassed: boolean } | string;
  try {
    const res = await client(PolicyService, pipeline).evaluatePolicies({ project, targetEnvironment: target, branch, releaseIntentId: intentId });
    got = {
      evaluations: res.evaluations.map((e) => ({
        name: e.policyName,
        passed: e.passed,
        ...(e.policyType === PolicyType.EXTERNAL_APPROVAL
          ? {
              approvals: {
                required: e.externalApprovalState?.requiredApprovals ?? -1,
                current: e.externalApprovalState?.currentApprovals ?? -1,
              },
            }
          : {}),
      })),
      allPassed: res.allPassed,
    };
  } catch (err) {
    got = Code[ConnectError.from(err).code] ?? "error";
  }
  log.push(`${what} → ${typeof got === "string" ? got : JSON.stringify(got)}`);
  const fail = (why: string) => {
    throw new Error(`seed ${SEED}, sequence ${seq}: ${what}: ${why}\n${log.join("\n")}`);
  };
  if (want.expected !== "ok") {
    if (got !== want.expected) fail(`model ${want.expected}, service ${JSON.stringify(got)}`);
    return;
  }
  if (typeof got === "string") return fail(`model ok, service ${got}`);
  // The safety property first, so a failure says what matters most.
  if (got.allPassed && !want.allPassed) fail(`UNSAFE: service passed, model holds: ${JSON.stringify(want)}`);
  if (JSON.stringify(got) !== JSON.stringify({ evaluations: want.evaluations, allPassed: want.allPassed }))
    fail(`model ${JSON.stringify(want)}, service ${JSON.stringify(got)}`);
  if (got.allPassed && got.evaluations.length > 0) stats.passes++;
  stats.verdicts += got.evaluations.length;
  stats.verdictsPassed += got.evaluations.filter((e) => e.passed).length;
}

describe("gate safety against the reference model", () => {
  it(`agrees on ${RUNS} random sequences of ${STEPS} commands (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const rand = prng(SEED);
    for (let seq = 0; seq < RUNS; seq++) {
      await runSequence(seq, rand);
      stats.sequences++;
    }
    // The run is only meaningful if the gate both held and opened.
    expect(stats.passes).toBeGreaterThan(0);
    expect(stats.evaluations - stats.passes).toBeGreaterThan(0);
    counters.add("model-based command sequences", stats.sequences, "every answer equal to the model");
    counters.add("commands applied to model and service", stats.commands, `codes agree (${stats.rejectedCommands} expected refusals)`);
    counters.add("EvaluatePolicies compared with the model", stats.evaluations, `0 unsafe passes; ${stats.passes} legitimate passes`);
    counters.add("policy verdicts compared (soak, branch, approval)", stats.verdicts, `each equal to the model; ${stats.verdictsPassed} passing`);
    counters.add("votes in model sequences", stats.votes, "four-eyes and counts agree");
  });
});
