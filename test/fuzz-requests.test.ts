import type { DescMethod } from "@bufbuild/protobuf";
import { Code, type Transport } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../src/gen/forest/v1/policy_pb.js";
import { FUZZ_PROJECT, messageArbitrary } from "./support/fuzz-arbitraries.js";
import { SuiteCounters } from "./support/reliability-report.js";
import { ALL_METHODS, callMethod, codeName, methodPath } from "./support/rpc-catalog.js";
import { startTestServer, type TestServer, token } from "./support/server.js";

// Property-based fuzzing of every RPC's request message over the real wire:
// random, huge, hostile and malformed field values, unknown enum numbers,
// missing/empty projects. The server must answer each with a deliberate code
// (never INTERNAL or UNKNOWN) and keep serving.

/** Cases per method and protocol; raise with FUZZ_RUNS for a longer run. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 30);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

const counters = new SuiteCounters("fuzz-requests");
let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await token({ sub: "fuzzer", orgs: { acme: "admin" } });
});
afterAll(async () => {
  counters.write();
  await server?.stop();
});

const FORBIDDEN = new Set<Code | "ok">([Code.Internal, Code.Unknown]);

async function stillServing(transport: Transport): Promise<void> {
  const method = PolicyService.method.listPolicies;
  const outcome = await callMethod(transport, method, { project: FUZZ_PROJECT });
  expect(outcome, "follow-up ListPolicies").toEqual({ code: "ok", message: "" });
}

async function fuzzMethod(method: DescMethod, transport: () => Transport, protocol: string): Promise<number> {
  let cases = 0;
  const t = transport();
  // Streams that open cost their bound; fewer of them keep the file fast.
  const numRuns = method.methodKind === "unary" ? RUNS : Math.max(5, Math.ceil(RUNS / 4));
  await fc.assert(
    fc.asyncProperty(messageArbitrary(method.input), async (message) => {
      cases++;
      const outcome = await callMethod(t, method, message);
      if (FORBIDDEN.has(outcome.code))
        throw new Error(`${protocol} ${methodPath(method)} answered ${codeName(outcome.code)}: ${outcome.message}`);
      if (outcome.code !== "ok") expect(outcome.message.length, "error message").toBeGreaterThan(0);
    }),
    { numRuns, seed: SEED, verbose: 1 },
  );
  await stillServing(t);
  return cases;
}

describe("fuzzed request messages never yield INTERNAL/UNKNOWN", () => {
  for (const method of ALL_METHODS) {
    it(`${methodPath(method)} over gRPC`, async () => {
      const cases = await fuzzMethod(method, () => server.grpc(admin), "gRPC");
      counters.add("typed requests fuzzed over gRPC (every RPC)", cases, "no INTERNAL/UNKNOWN; next call served");
    });
    it(`${methodPath(method)} over Connect JSON (HTTP/1.1)`, async () => {
      const cases = await fuzzMethod(method, () => server.connect(admin), "Connect");
      counters.add(
        "typed requests fuzzed over Connect JSON (every RPC)",
        cases,
        "no INTERNAL/UNKNOWN; next call served",
      );
    });
  }
});

describe("named bad inputs get INVALID_ARGUMENT naming the field", () => {
  const cases: [string, DescMethod, Record<string, unknown>, string][] = [
    ["missing project", PolicyService.method.listPolicies, {}, "project"],
    ["empty organisation", PolicyService.method.listPolicies, { project: { organisation: "", project: "x" } }, "project.organisation"],
    ["huge project name", PolicyService.method.listPolicies, { project: { organisation: "acme", project: "p".repeat(100_000) } }, "project.project"],
    [
      "invalid release intent UUID",
      PolicyService.method.evaluatePolicies,
      { project: FUZZ_PROJECT, targetEnvironment: "prod", releaseIntentId: "not-a-uuid" },
      "release_intent_id",
    ],
    [
      "negative soak duration",
      PolicyService.method.createPolicy,
      {
        project: FUZZ_PROJECT,
        name: "neg",
        policyType: 1,
        config: { case: "soakTime", value: { sourceEnvironment: "a", targetEnvironment: "b", durationSeconds: -5n } },
      },
      "soak_time.duration_seconds",
    ],
    [
      "int64 overflow soak duration",
      PolicyService.method.createPolicy,
      {
        project: FUZZ_PROJECT,
        name: "big",
        policyType: 1,
        config: {
          case: "soakTime",
          value: { sourceEnvironment: "a", targetEnvironment: "b", durationSeconds: 9223372036854775807n },
        },
      },
      "soak_time.duration_seconds",
    ],
    [
      "int32 minimum required approvals",
      PolicyService.method.createPolicy,
      {
        project: FUZZ_PROJECT,
        name: "neg-approvals",
        policyType: 3,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: -2147483648 } },
      },
      "external_approval.required_approvals",
    ],
    [
      "unknown policy type enum value",
      PolicyService.method.createPolicy,
      {
        project: FUZZ_PROJECT,
        name: "unknown-enum",
        policyType: 77,
        config: { case: "externalApproval", value: { targetEnvironment: "prod", requiredApprovals: 1 } },
      },
      "policy_type",
    ],
  ];
  for (const [what, method, message, field] of cases) {
    for (const protocol of ["gRPC", "Connect"] as const) {
      it(`${what} (${protocol})`, async () => {
        const transport = protocol === "gRPC" ? server.grpc(admin) : server.connect(admin);
        const outcome = await callMethod(transport, method, message);
        expect(codeName(outcome.code)).toBe("InvalidArgument");
        expect(outcome.message.startsWith(`${field}:`), outcome.message).toBe(true);
        counters.add("named bad inputs (missing project, bad UUID, overflow, unknown enum)", 1, "INVALID_ARGUMENT naming the field");
      });
    }
  }
});
