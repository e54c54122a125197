import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReleaseService } from "../src/gen/releasegate/v1/release_pb.js";
import { type Cast, cast } from "./support/approval-fixtures.js";
import { testDatabaseKind } from "./support/database.js";
import { ManualClock, startTestServer, type TestServer } from "./support/server.js";

// A Forest client: plain @grpc/grpc-js loading a copy of Forest's own policy
// contract (test/fixtures/forest-policy.proto, no releasegate field), with
// Forest's Project fields 3-5 filled in as Forest's CLI sends them.

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
// biome-ignore lint/suspicious/noExplicitAny: dynamic grpc-js client, typed at the call sites
type Dynamic = grpc.Client & Record<string, (req: unknown, md: grpc.Metadata, cb: Callback<any>) => void>;

const clock = new ManualClock();
let server: TestServer;
let forest: Dynamic;
let t: Cast;
const project = {
  organisation: "acme",
  project: `forest-${randomUUID().slice(0, 8)}`,
  readme: "# web\n\nThe storefront.",
  description: "Storefront web app",
  metadata: {
    gitUrl: "https://git.example.com/acme/web",
    homepage: "https://web.example.com",
    docsUrl: "https://docs.example.com/web",
    supportUrl: "https://chat.example.com/web",
    domain: "payments",
    owner: "team-web",
  },
};

function call<T>(method: string, req: unknown, tok: string): Promise<T> {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${tok}`);
  return new Promise((resolve, reject) => {
    forest[method]!(req, md, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

beforeAll(async () => {
  server = await startTestServer({ clock });
  t = await cast();
  const definition = await protoLoader.load("forest-policy.proto", {
    includeDirs: ["test/fixtures"],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    forest: { v1: { PolicyService: grpc.ServiceClientConstructor } };
  };
  forest = new loaded.forest.v1.PolicyService(
    server.baseUrl.replace("http://", ""),
    grpc.credentials.createInsecure(),
  ) as Dynamic;
});
afterAll(async () => {
  forest?.close();
  await server?.stop();
});

interface ForestPolicy {
  name: string;
  enabled: boolean;
  policyType: string;
  config: string;
  supersedePending?: { targetEnvironment: string; sameBranchOnly: boolean; cancelInProgress: boolean };
}

async function register(branch: string): Promise<string> {
  clock.advance(1);
  const id = randomUUID();
  await server.client(ReleaseService, t.pipeline).registerReleaseIntent({
    project: { organisation: project.organisation, project: project.project },
    releaseIntentId: id,
    branch,
  });
  return id;
}

describe(`a Forest grpc-js client with Forest's policy contract on ${testDatabaseKind()}`, () => {
  it("creates, lists and updates a supersede policy, and EvaluatePolicies reports it", async () => {
    const created = await call<{ policy: ForestPolicy }>(
      "CreatePolicy",
      {
        project,
        name: "one-pending",
        policyType: "POLICY_TYPE_SUPERSEDE_PENDING",
        supersedePending: { targetEnvironment: "prod", sameBranchOnly: false, cancelInProgress: false },
      },
      t.ada,
    );
    expect(created.policy).toMatchObject({
      name: "one-pending",
      enabled: true,
      policyType: "POLICY_TYPE_SUPERSEDE_PENDING",
      config: "supersedePending",
      supersedePending: { targetEnvironment: "prod", sameBranchOnly: false, cancelInProgress: false },
    });

    const listed = await call<{ policies: ForestPolicy[] }>("ListPolicies", { project }, t.ada);
    expect(listed.policies.map((p) => [p.name, p.policyType, p.config, p.supersedePending?.sameBranchOnly])).toEqual([
      ["one-pending", "POLICY_TYPE_SUPERSEDE_PENDING", "supersedePending", false],
    ]);

    const updated = await call<{ policy: ForestPolicy }>(
      "UpdatePolicy",
      {
        project,
        name: "one-pending",
        supersedePending: { targetEnvironment: "prod", sameBranchOnly: true, cancelInProgress: false },
      },
      t.ada,
    );
    expect(updated.policy.supersedePending).toEqual({ targetEnvironment: "prod", sameBranchOnly: true, cancelInProgress: false });

    const old = await register("main");
    const newer = await register("main");
    const evaluated = await call<{
      allPassed: boolean;
      evaluations: { policyName: string; policyType: string; passed: boolean; reason: string }[];
    }>("EvaluatePolicies", { project, targetEnvironment: "prod", releaseIntentId: old }, t.pipeline);
    expect(evaluated).toMatchObject({
      allPassed: false,
      evaluations: [
        {
          policyName: "one-pending",
          policyType: "POLICY_TYPE_SUPERSEDE_PENDING",
          passed: false,
          reason: `superseded by ${newer} (policy 'one-pending')`,
        },
      ],
    });
    const newest = await call<{ allPassed: boolean }>(
      "EvaluatePolicies",
      { project, targetEnvironment: "prod", releaseIntentId: newer },
      t.pipeline,
    );
    expect(newest.allPassed).toBe(true);
  });

  it("gets INVALID_ARGUMENT for cancel_in_progress true", async () => {
    await expect(
      call(
        "CreatePolicy",
        {
          project,
          name: "cancel",
          policyType: "POLICY_TYPE_SUPERSEDE_PENDING",
          supersedePending: { targetEnvironment: "prod", sameBranchOnly: false, cancelInProgress: true },
        },
        t.ada,
      ),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^supersede_pending\.cancel_in_progress: not supported; /),
    });
  });
});
