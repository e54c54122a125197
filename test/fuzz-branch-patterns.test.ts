import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService, PolicyType } from "../src/gen/forest/v1/policy_pb.js";
import { compileBranchPattern } from "../src/policy/branch-pattern.js";
import { BRANCH_NAME_MAX } from "../src/policy/policy.js";
import { expectCode } from "./support/approval-fixtures.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Catastrophic-backtracking classics as branch patterns: each is either
// rejected at create (INVALID_ARGUMENT naming the field) or evaluated in
// bounded, linear time: over the wire on the longest branch a request may
// carry (BRANCH_NAME_MAX), and by the compiled matcher itself on 100k chars.

/** Patterns that take exponential time on a backtracking engine. */
const REDOS: readonly string[] = [
  "(a+)+$",
  "(a|aa)+$",
  "(.*a){20}",
  "(a*)*b",
  "(x+x+)+y",
  "^(([a-z])+.)+[A-Z]([a-z])+$",
  "(\\w+\\s?)*$",
  "^(a|a?)+$",
  "(.*){1,32000}[bc]",
];
/** Features a linear-time engine cannot offer: must be rejected at create. */
const UNSUPPORTED: readonly string[] = ["(?=main)", "(?!main)", "(a)\\1", "(?<=x)y", "x++", "("];

const BRANCH_LENGTH = 100_000;
// Generous for a loaded 2-core CI box; a backtracking engine needs years.
const EVALUATION_BOUND_MS = 3_000;

const counters = new SuiteCounters("fuzz-branch-patterns");
let server: TestServer;
let admin: string;
const project = { organisation: "acme", project: "redos" };

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "ada", orgs: { acme: "admin" } });
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

const policies = () => server.client(PolicyService, admin);

async function createBranchPolicy(name: string, pattern: string, targetEnvironment: string) {
  return policies().createPolicy({
    project,
    name,
    policyType: PolicyType.BRANCH_RESTRICTION,
    config: { case: "branchRestriction", value: { targetEnvironment, branchPattern: pattern } },
  });
}

async function timedEvaluate(targetEnvironment: string, branch: string): Promise<{ ms: number; passed: boolean }> {
  const started = performance.now();
  const res = await policies().evaluatePolicies({ project, targetEnvironment, branch });
  return { ms: performance.now() - started, passed: res.allPassed };
}

describe("hostile branch patterns", () => {
  REDOS.forEach((pattern, i) => {
    it(`${pattern} is rejected or evaluated in linear time on a ${BRANCH_LENGTH}-char branch`, async () => {
      const env = `env-${i}`;
      const created = await createBranchPolicy(`redos-${i}`, pattern, env).catch((e: unknown) => e);
      if (!(created instanceof Error)) {
        // Adversarial inputs for these patterns: a long run of the repeated
        // character followed by one that makes the match fail late.
        const inputs = [`${"a".repeat(BRANCH_LENGTH)}!`, `${"x".repeat(BRANCH_LENGTH)}`, `${"a ".repeat(BRANCH_LENGTH / 2)}!`];
        const matcher = compileBranchPattern(pattern);
        for (const branch of inputs) {
          // The engine on 100k chars (no request may carry that much).
          const started = performance.now();
          matcher.matches(branch);
          const engineMs = performance.now() - started;
          expect(engineMs, `${pattern} on ${branch.slice(0, 8)}… took ${engineMs.toFixed(0)} ms`).toBeLessThan(
            EVALUATION_BOUND_MS,
          );
          // Over the wire, the longest branch a request may carry.
          const wire = await timedEvaluate(env, branch.slice(-BRANCH_NAME_MAX));
          expect(wire.ms).toBeLessThan(EVALUATION_BOUND_MS);
          expect(typeof wire.passed).toBe("boolean");
        }
        await expectCode(timedEvaluate(env, inputs[0]!), Code.InvalidArgument, /^branch: /);
        counters.add("catastrophic-backtracking patterns evaluated on 100k-char branches", inputs.length, `each under ${EVALUATION_BOUND_MS} ms`);
      } else {
        await expectCode(Promise.reject(created), Code.InvalidArgument, /^branch_restriction\.branch_pattern: /);
        counters.add("catastrophic-backtracking patterns rejected at create", 1, "INVALID_ARGUMENT naming the field");
      }
    });
  });

  UNSUPPORTED.forEach((pattern, i) => {
    it(`rejects ${pattern} at create with INVALID_ARGUMENT naming the field`, async () => {
      await expectCode(
        createBranchPolicy(`unsupported-${i}`, pattern, "prod"),
        Code.InvalidArgument,
        /^branch_restriction\.branch_pattern: not a valid RE2 pattern/,
      );
      counters.add("non-linear regex features (lookaround, backreference, possessive)", 1, "rejected at create");
    });
  });

  it("rejects a pattern over the length limit", async () => {
    await expectCode(
      createBranchPolicy("too-long", "a".repeat(10_000), "prod"),
      Code.InvalidArgument,
      /^branch_restriction\.branch_pattern: must be at most \d+ characters/,
    );
  });
});
