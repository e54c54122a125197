/**
 * Sends a model command to the real server over gRPC and reduces the answer
 * to what the reference model predicts: the code, the error message, and the
 * fields the rules fix.
 */
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../../src/gen/releasegate/v1/approval_pb.js";
import { DeploymentStatus, ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { getProjectEnvironments, setProjectEnvironments } from "./environment-wire.js";
import type { Command, WireConfig } from "./model-commands.js";

/** What the service answered: "ok" or a code name, the raw message, and the reduced answer. */
export interface Answer {
  readonly code: string;
  readonly message: string;
  readonly value?: unknown;
}

interface Clients {
  readonly transport: Transport;
  readonly policies: Client<typeof PolicyService>;
  readonly releases: Client<typeof ReleaseService>;
  readonly audit: Client<typeof ApprovalAuditService>;
}

/** One HTTP/2 session per caller for the whole run (a new one per call costs more than the call). */
export class Wire {
  readonly #clients = new Map<string, Clients>();
  readonly #transport: (token: string) => Transport;
  readonly #tokens: ReadonlyMap<string, string>;

  constructor(transport: (token: string) => Transport, tokens: ReadonlyMap<string, string>) {
    this.#transport = transport;
    this.#tokens = tokens;
  }

  #for(caller: string): Clients {
    let c = this.#clients.get(caller);
    if (c === undefined) {
      const transport = this.#transport(this.#tokens.get(caller)!);
      c = {
        transport,
        policies: createClient(PolicyService, transport),
        releases: createClient(ReleaseService, transport),
        audit: createClient(ApprovalAuditService, transport),
      };
      this.#clients.set(caller, c);
    }
    return c;
  }

  async send(cmd: Exclude<Command, { kind: "advance" }>): Promise<Answer> {
    try {
      return { code: "ok", message: "", value: await this.#call(cmd, this.#for(cmd.caller)) };
    } catch (err) {
      const e = ConnectError.from(err);
      return { code: Code[e.code] ?? String(e.code), message: e.rawMessage };
    }
  }

  async #call(cmd: Exclude<Command, { kind: "advance" }>, c: Clients): Promise<unknown> {
    const project = cmd.project;
    switch (cmd.kind) {
      case "setEnvs":
        return setProjectEnvironments(c.transport, project, cmd.environments);
      case "getEnvs":
        return getProjectEnvironments(c.transport, project);
      case "createPolicy": {
        const res = await c.policies.createPolicy({ project, name: cmd.name, ...configToProto(cmd.config) });
        return configFromProto(res.policy?.config);
      }
      case "updatePolicy": {
        const config = cmd.config === undefined ? {} : { config: configToProto(cmd.config).config };
        const res = await c.policies.updatePolicy({ project, name: cmd.name, enabled: cmd.enabled, ...config });
        return configFromProto(res.policy?.config);
      }
      case "deletePolicy":
        await c.policies.deletePolicy({ project, name: cmd.name });
        return {};
      case "register": {
        const res = await c.releases.registerReleaseIntent({
          project,
          releaseIntentId: cmd.id,
          authorUserId: cmd.author,
          branch: cmd.branch,
          version: cmd.version,
        });
        return { created: res.created, author: res.releaseIntent?.authorUserId };
      }
      case "getIntent": {
        const i = (await c.releases.getReleaseIntent({ project, releaseIntentId: cmd.id })).releaseIntent;
        // Issue 11's registrant fields (ReleaseIntent 8 and 9), read by name: absent from older generated code.
        return {
          author: i?.authorUserId,
          branch: i?.branch,
          registeredBy: i === undefined ? undefined : Reflect.get(i, "registeredByUserId"),
          registeredByType: i === undefined ? undefined : Reflect.get(i, "registeredByActorType"),
        };
      }
      case "deploy": {
        const status = { succeeded: DeploymentStatus.SUCCEEDED, failed: DeploymentStatus.FAILED, unspecified: DeploymentStatus.UNSPECIFIED }[cmd.status];
        const res = await c.releases.recordDeployment({
          project,
          environment: cmd.environment,
          releaseIntentId: cmd.id,
          status,
          finishedAt: cmd.finishedAt === undefined ? undefined : new Date(cmd.finishedAt).toISOString(),
        });
        // Deployment.recorded_at (field 7) is issue 11's: read by name.
        const recorded = res.deployment === undefined ? undefined : Reflect.get(res.deployment, "recordedAt");
        return {
          environment: res.deployment?.environment,
          recordedAt: typeof recorded === "string" && recorded !== "" ? Date.parse(recorded) : recorded,
        };
      }
      case "vote": {
        const req = { project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment };
        const res =
          cmd.decision === "approved"
            ? // A bypass needs a written reason (at least 10 characters).
              await c.policies.approveRelease({ ...req, forceBypass: cmd.bypass, ...(cmd.bypass ? { comment: "model: bypass reason" } : {}) })
            : await c.policies.rejectRelease(req);
        const mine = res.state?.decisions.find((d) => d.userId === cmd.caller);
        return { current: res.state?.currentApprovals, decision: mine?.decision, kind: mine?.decisionKind };
      }
      case "state": {
        const res = await c.policies.getExternalApprovalState({ project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment });
        return { current: res.state?.currentApprovals };
      }
      case "evaluate": {
        const res = await c.policies.evaluatePolicies({
          project,
          targetEnvironment: cmd.environment,
          branch: cmd.branch,
          releaseIntentId: cmd.id,
        });
        return {
          evaluations: res.evaluations.map((e) => ({
            name: e.policyName,
            type: TYPE_NAMES[e.policyType] ?? String(e.policyType),
            passed: e.passed,
            reason: e.reason,
            ...(e.externalApprovalState === undefined
              ? {}
              : { approvals: { required: e.externalApprovalState.requiredApprovals, current: e.externalApprovalState.currentApprovals } }),
          })),
          allPassed: res.allPassed,
        };
      }
      case "history": {
        const res = await c.audit.listApprovalHistory({ project, targetEnvironment: cmd.environment, pageSize: 1000 });
        const entries = new Set(res.entries.map((e) => `${e.releaseIntentId}|${e.targetEnvironment}|${e.userId}`));
        // Issue 11's intent_author_user_id and intent_registered_by_user_id (entry fields 11 and 12), read by name.
        const intents = new Set(
          res.entries.map(
            (e) => `${e.releaseIntentId}|${Reflect.get(e, "intentAuthorUserId")}|${Reflect.get(e, "intentRegisteredByUserId")}`,
          ),
        );
        return { entries: [...entries].sort(), intents: [...intents].sort() };
      }
      case "watch": {
        const abort = new AbortController();
        try {
          for await (const m of c.audit.watchApprovalEvents({ project, targetEnvironment: cmd.environment }, { signal: abort.signal }))
            return { subscribed: m.subscribed };
          return { subscribed: false };
        } finally {
          abort.abort();
        }
      }
    }
  }
}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  [PolicyType.UNSPECIFIED]: "unspecified",
  [PolicyType.SOAK_TIME]: "soak",
  [PolicyType.BRANCH_RESTRICTION]: "branch",
  [PolicyType.EXTERNAL_APPROVAL]: "approval",
};

function configToProto(c: WireConfig) {
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

type ProtoConfig = NonNullable<Awaited<ReturnType<Client<typeof PolicyService>["createPolicy"]>>["policy"]>["config"];

function configFromProto(c: ProtoConfig | undefined): unknown {
  switch (c?.case) {
    case "soakTime":
      return { kind: "soak", target: c.value.targetEnvironment, source: c.value.sourceEnvironment };
    case "branchRestriction":
      return { kind: "branch", target: c.value.targetEnvironment };
    case "externalApproval":
      return { kind: "approval", target: c.value.targetEnvironment };
    default:
      return { kind: "none" };
  }
}
