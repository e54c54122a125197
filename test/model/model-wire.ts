/**
 * Sends a model command to the real server over gRPC and reduces the answer
 * to what the reference model predicts: the code, the error message, and the
 * fields the rules fix.
 */
import { type CallOptions, type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { ApprovalAuditService } from "../../src/gen/releasegate/v1/approval_pb.js";
import { type ApprovalRequest, ApprovalRequestService, ApprovalRequestState } from "../../src/gen/releasegate/v1/approval_request_pb.js";
import { ApproverService } from "../../src/gen/releasegate/v1/approver_pb.js";
import { BreakGlassService } from "../../src/gen/releasegate/v1/break_glass_pb.js";
import { DeploymentStatus, ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { getProjectEnvironments, setProjectEnvironments } from "./environment-wire.js";
import type { Command, ProjectRef, WireConfig } from "./model-commands.js";
import type { RequestView } from "./model-requests.js";

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
  readonly directory: Client<typeof ApproverService>;
  readonly breakGlass: Client<typeof BreakGlassService>;
  readonly requests: Client<typeof ApprovalRequestService>;
}

/**
 * One HTTP/2 session for the whole run (a new one per call costs more than
 * the call); each call carries its caller's token in its own header, so that
 * every sequence can have organisations of its own.
 */
export class Wire {
  readonly #c: Clients;
  /** The test's grant refs → the ids the server answered. */
  readonly #grantIds = new Map<string, string>();

  constructor(transport: Transport) {
    this.#c = {
      transport,
      policies: createClient(PolicyService, transport),
      releases: createClient(ReleaseService, transport),
      audit: createClient(ApprovalAuditService, transport),
      directory: createClient(ApproverService, transport),
      breakGlass: createClient(BreakGlassService, transport),
      requests: createClient(ApprovalRequestService, transport),
    };
  }

  async send(cmd: Exclude<Command, { kind: "advance" }>, token: string): Promise<Answer> {
    try {
      return { code: "ok", message: "", value: await this.#call(cmd, this.#c, { headers: { authorization: `Bearer ${token}` } }) };
    } catch (err) {
      const e = ConnectError.from(err);
      return { code: Code[e.code] ?? String(e.code), message: e.rawMessage };
    }
  }

  /**
   * GetApprovalRequest as `token` (an admin's) sees it, reduced to the
   * model's view; "unreadable: <code>" when the read was refused.
   */
  async view(at: { project: ProjectRef; id: string; environment: string }, token: string): Promise<RequestView | string> {
    try {
      const res = await this.#c.requests.getApprovalRequest(
        { project: at.project, releaseIntentId: at.id, targetEnvironment: at.environment },
        { headers: { authorization: `Bearer ${token}` } },
      );
      return requestView(res.request, res.earlier.length);
    } catch (err) {
      const e = ConnectError.from(err);
      return `unreadable: ${Code[e.code] ?? e.code} ${e.rawMessage}`;
    }
  }

  async #call(cmd: Exclude<Command, { kind: "advance" }>, c: Clients, o: CallOptions): Promise<unknown> {
    if ("organisation" in cmd) return this.#directoryCall(cmd, c, o);
    const project = cmd.project;
    switch (cmd.kind) {
      case "setEnvs":
        return setProjectEnvironments(c.transport, project, cmd.environments, o);
      case "getEnvs":
        return getProjectEnvironments(c.transport, project, o);
      case "createPolicy": {
        const res = await c.policies.createPolicy({ project, name: cmd.name, ...configToProto(cmd.config) }, o);
        return configFromProto(res.policy?.config);
      }
      case "updatePolicy": {
        const config = cmd.config === undefined ? {} : { config: configToProto(cmd.config).config };
        const res = await c.policies.updatePolicy({ project, name: cmd.name, enabled: cmd.enabled, ...config }, o);
        return configFromProto(res.policy?.config);
      }
      case "deletePolicy":
        await c.policies.deletePolicy({ project, name: cmd.name }, o);
        return {};
      case "breakGlass":
        await c.breakGlass.breakGlass(
          { project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment, reason: cmd.reason },
          o,
        );
        return {};
      case "register": {
        const res = await c.releases.registerReleaseIntent({
          project,
          releaseIntentId: cmd.id,
          authorUserId: cmd.author,
          branch: cmd.branch,
          version: cmd.version,
        }, o);
        return { created: res.created, author: res.releaseIntent?.authorUserId };
      }
      case "getIntent": {
        const i = (await c.releases.getReleaseIntent({ project, releaseIntentId: cmd.id }, o)).releaseIntent;
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
        }, o);
        // Deployment.recorded_at (field 7) is issue 11's: read by name.
        const recorded = res.deployment === undefined ? undefined : Reflect.get(res.deployment, "recordedAt");
        return {
          environment: res.deployment?.environment,
          recordedAt: typeof recorded === "string" && recorded !== "" ? Date.parse(recorded) : recorded,
        };
      }
      case "vote": {
        const req = { project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment, comment: cmd.comment };
        const res =
          cmd.decision === "approved"
            ? await c.policies.approveRelease({ ...req, forceBypass: cmd.bypass }, o)
            : await c.policies.rejectRelease(req, o);
        const mine = res.state?.decisions.find((d) => d.userId === cmd.caller);
        return { current: res.state?.currentApprovals, decision: mine?.decision, kind: mine?.decisionKind };
      }
      case "requestApproval": {
        const res = await c.requests.requestApproval({ project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment }, o);
        return { created: res.created, state: stateName(res.request?.state) };
      }
      case "cancelRequest": {
        const res = await c.requests.cancelApprovalRequest(
          { project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment, reason: cmd.reason ?? "" },
          o,
        );
        return { state: stateName(res.request?.state) };
      }
      case "getRequest": {
        const res = await c.requests.getApprovalRequest({ project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment }, o);
        return requestView(res.request, res.earlier.length);
      }
      case "state": {
        const res = await c.policies.getExternalApprovalState({ project, releaseIntentId: cmd.id, targetEnvironment: cmd.environment }, o);
        return { current: res.state?.currentApprovals };
      }
      case "evaluate": {
        const res = await c.policies.evaluatePolicies({
          project,
          targetEnvironment: cmd.environment,
          branch: cmd.branch,
          releaseIntentId: cmd.id,
        }, o);
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
        const res = await c.audit.listApprovalHistory({ project, targetEnvironment: cmd.environment, pageSize: 1000 }, o);
        // Votes and break-glass; issue 13's lifecycle entries (requested, expired, cancelled, ...) are not the model's.
        const votes = res.entries.filter((e) => ["peer", "admin_override", "break_glass"].includes(e.decisionKind));
        const entries = new Set(votes.map((e) => `${e.releaseIntentId}|${e.targetEnvironment}|${e.userId}`));
        // Issue 11's intent_author_user_id and intent_registered_by_user_id (entry fields 11 and 12), read by name.
        const intents = new Set(
          votes.map(
            (e) => `${e.releaseIntentId}|${Reflect.get(e, "intentAuthorUserId")}|${Reflect.get(e, "intentRegisteredByUserId")}`,
          ),
        );
        return { entries: [...entries].sort(), intents: [...intents].sort() };
      }
      case "watch": {
        const abort = new AbortController();
        try {
          for await (const m of c.audit.watchApprovalEvents({ project, targetEnvironment: cmd.environment }, { ...o, signal: abort.signal }))
            return { subscribed: m.subscribed };
          return { subscribed: false };
        } finally {
          abort.abort();
        }
      }
    }
  }

  async #directoryCall(cmd: Extract<Command, { organisation: string }>, c: Clients, o: CallOptions): Promise<unknown> {
    const organisation = cmd.organisation;
    const expiresAt = (t: number | undefined) => (t === undefined ? "" : new Date(t).toISOString());
    switch (cmd.kind) {
      case "createGroup": {
        const g = (await c.directory.createApproverGroup({ organisation, name: cmd.name, idpGroup: cmd.idp }, o)).group;
        return { name: g?.name, idp: g?.idpGroup };
      }
      case "deleteGroup":
        await c.directory.deleteApproverGroup({ organisation, name: cmd.name }, o);
        return {};
      case "listGroups": {
        const res = await c.directory.listApproverGroups({ organisation }, o);
        return {
          groups: [...res.groups]
            .sort((a, b) => (a.name < b.name ? -1 : 1))
            .map((g) => ({
              name: g.name,
              idp: g.idpGroup,
              members: g.members.map((m) => `${m.userId}|${m.scope}|${m.scopeId}|${m.active}`).sort(),
            })),
        };
      }
      case "addMember": {
        const m = (
          await c.directory.addGroupMember(
            { organisation, group: cmd.group, userId: cmd.user, scope: cmd.scope, scopeId: cmd.scopeId, expiresAt: expiresAt(cmd.expiresAt) },
            o,
          )
        ).member;
        return { member: m === undefined ? undefined : `${m.userId}|${m.scope}|${m.scopeId}|${m.active}` };
      }
      case "removeMember":
        await c.directory.removeGroupMember({ organisation, group: cmd.group, userId: cmd.user }, o);
        return {};
      case "grantRole": {
        const g = (
          await c.directory.grantRole(
            { organisation, userId: cmd.user, role: cmd.role, scope: cmd.scope, scopeId: cmd.scopeId, expiresAt: expiresAt(cmd.expiresAt) },
            o,
          )
        ).grant;
        if (g !== undefined) this.#grantIds.set(cmd.ref, g.id);
        return { grant: g === undefined ? undefined : `${g.userId}|${g.role}|${g.scope}|${g.scopeId}|${g.active}` };
      }
      case "revokeGrant":
        // A ref the server never answered (the grant was refused): an id nobody has.
        await c.directory.revokeRoleGrant({ organisation, id: this.#grantIds.get(cmd.ref) ?? "00000000-0000-4000-8000-000000000000" }, o);
        return {};
      case "listGrants": {
        const res = await c.directory.listRoleGrants({ organisation, userId: cmd.user }, o);
        return { grants: res.grants.map((g) => `${g.userId}|${g.role}|${g.scope}|${g.scopeId}|${g.active}`).sort() };
      }
    }
  }
}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  [PolicyType.UNSPECIFIED]: "unspecified",
  [PolicyType.SOAK_TIME]: "soak",
  [PolicyType.BRANCH_RESTRICTION]: "branch",
  [PolicyType.EXTERNAL_APPROVAL]: "approval",
  [PolicyType.SUPERSEDE_PENDING]: "supersede",
};

const STATE_NAMES: Readonly<Record<number, string>> = {
  [ApprovalRequestState.PENDING]: "pending",
  [ApprovalRequestState.APPROVED]: "approved",
  [ApprovalRequestState.REJECTED]: "rejected",
  [ApprovalRequestState.EXPIRED]: "expired",
  [ApprovalRequestState.SUPERSEDED]: "superseded",
  [ApprovalRequestState.CANCELLED]: "cancelled",
};

function stateName(s: ApprovalRequestState | undefined): string | undefined {
  return s === undefined ? undefined : (STATE_NAMES[s] ?? `state ${s}`);
}

const time = (t: string) => (t === "" ? null : Date.parse(t));

/** GetApprovalRequest's answer as the model's view. */
function requestView(r: ApprovalRequest | undefined, earlier: number): RequestView {
  if (r === undefined) return { count: earlier, state: "none" };
  return {
    count: 1 + earlier,
    state: (stateName(r.state) ?? "none") as RequestView["state"],
    openedBy: r.openedBy,
    supersededBy: r.supersededBy === "" ? undefined : r.supersededBy,
    requestedAt: time(r.requestedAt) ?? undefined,
    expiresAt: time(r.expiresAt),
  };
}

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
        config: {
          case: "externalApproval" as const,
          value: {
            targetEnvironment: c.target,
            requiredApprovals: c.required,
            rules: (c.rules ?? []).map((r) => ({ group: r.group, minRole: r.minRole, requiredApprovals: r.required })),
            distinctApprovers: c.distinct ?? false,
            requestTimeoutSeconds: BigInt(c.timeout ?? 0),
            maxApprovalAgeSeconds: BigInt(c.maxAge ?? 0),
            rejectBlocks: c.rejectBlocks ?? false,
          },
        },
      };
    case "supersede":
      return {
        policyType: PolicyType.SUPERSEDE_PENDING,
        config: {
          case: "supersedePending" as const,
          value: { targetEnvironment: c.target, sameBranchOnly: c.sameBranch, cancelInProgress: c.cancelInProgress },
        },
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
      return {
        kind: "approval",
        target: c.value.targetEnvironment,
        timeout: Number(c.value.requestTimeoutSeconds),
        maxAge: Number(c.value.maxApprovalAgeSeconds),
        rejectBlocks: c.value.rejectBlocks,
      };
    case "supersedePending":
      return { kind: "supersede", target: c.value.targetEnvironment, sameBranch: c.value.sameBranchOnly };
    default:
      return { kind: "none" };
  }
}
