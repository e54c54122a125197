/**
 * The commands the gate-safety test sends to the reference model and to the
 * service, and the callers that send them. Plain data, so a failing trace
 * prints as it was sent.
 */

/** The role ladder (issue 12), lowest first. */
export const LADDER = ["viewer", "member", "maintainer", "admin"] as const;
export type Role = (typeof LADDER)[number];

export interface Caller {
  readonly sub: string;
  /**
   * Token role per organisation (by its base name, "acme" or "globex"); no
   * entry means no role there. A string outside the ladder is no role either.
   */
  readonly roles: Readonly<Record<string, string>>;
  /** A pipeline token (`actor_type: "service"`). */
  readonly service: boolean;
  /** The token's identity-provider groups claim. */
  readonly groups?: readonly string[];
}

/** Base organisation names; each sequence has its own organisations, `acme-s12` and so on. */
export const ORGS = ["acme", "globex"] as const;

/** "acme-s12" → "acme": the name the callers' roles are keyed by. */
export function baseOrg(organisation: string): string {
  return organisation.replace(/-s[0-9]+$/, "");
}
export const PROJECTS = ["web", "api"] as const;

/**
 * Per-org admins, members of both organisations, members of only one, and
 * services (pipelines). ada is admin of acme but only a member of globex.
 * Issue 12's ladder: vic is a viewer and max a maintainer in acme, uma holds
 * a role string outside the ladder; bob and carol carry identity-provider
 * groups in their tokens.
 */
export const CALLERS: Readonly<Record<string, Caller>> = {
  ada: { sub: "ada", roles: { acme: "admin", globex: "member" }, service: false },
  gus: { sub: "gus", roles: { globex: "admin" }, service: false },
  bob: { sub: "bob", roles: { acme: "member", globex: "member" }, service: false, groups: ["oncall"] },
  alice: { sub: "alice", roles: { acme: "member", globex: "member" }, service: false },
  carol: { sub: "carol", roles: { acme: "member" }, service: false, groups: ["sec-idp", "oncall"] },
  vic: { sub: "vic", roles: { acme: "viewer" }, service: false },
  max: { sub: "max", roles: { acme: "maintainer", globex: "viewer" }, service: false },
  uma: { sub: "uma", roles: { acme: "owner" }, service: false },
  dave: { sub: "dave", roles: { acme: "member" }, service: false },
  erin: { sub: "erin", roles: { globex: "member" }, service: false },
  ci: { sub: "ci", roles: { acme: "member", globex: "member" }, service: true },
  gbot: { sub: "gbot", roles: { globex: "member" }, service: true },
};

export interface ProjectRef {
  readonly organisation: string;
  readonly project: string;
}

/** A policy config as sent: environment names exactly as the caller spelled them. */
export type WireConfig =
  | { readonly kind: "soak"; readonly target: string; readonly source: string; readonly seconds: number }
  | { readonly kind: "branch"; readonly target: string; readonly pattern: string }
  | {
      readonly kind: "approval";
      readonly target: string;
      readonly required: number;
      /** Issue 12's rules (ExternalApprovalConfig 100) and distinct_approvers (101); absent: none. */
      readonly rules?: readonly WireRule[];
      readonly distinct?: boolean;
      /** Issue 13 (ExternalApprovalConfig 102-104): request timeout and maximum approval age in seconds (0 or absent: none), reject_blocks. */
      readonly timeout?: number;
      readonly maxAge?: number;
      readonly rejectBlocks?: boolean;
    }
  | {
      /** Forest's POLICY_TYPE_SUPERSEDE_PENDING (issue 13): SupersedePendingConfig at config field 13. */
      readonly kind: "supersede";
      readonly target: string;
      readonly sameBranch: boolean;
      readonly cancelInProgress: boolean;
    };

/** An approval rule as sent: group and minRole as given ("" = not set). */
export interface WireRule {
  readonly group: string;
  readonly minRole: string;
  readonly required: number;
}

/** A directory scope as sent. */
export interface WireScope {
  readonly scope: string;
  readonly scopeId: string;
  /** ms since epoch; undefined = no expiry. */
  readonly expiresAt?: number;
}

interface OrgBase {
  readonly caller: string;
  readonly organisation: string;
}

export type DeployStatus = "succeeded" | "failed" | "unspecified";

interface Base {
  readonly caller: string;
  readonly project: ProjectRef;
}

export type Command =
  | (Base & { readonly kind: "setEnvs"; readonly environments: readonly string[] })
  | (Base & { readonly kind: "getEnvs" })
  | (Base & { readonly kind: "createPolicy"; readonly name: string; readonly config: WireConfig })
  | (Base & { readonly kind: "updatePolicy"; readonly name: string; readonly enabled?: boolean; readonly config?: WireConfig })
  | (Base & { readonly kind: "deletePolicy"; readonly name: string })
  | (Base & {
      readonly kind: "register";
      readonly id: string;
      /** "" = not given (the caller is the author). */
      readonly author: string;
      readonly branch: string;
      readonly version: string;
    })
  | (Base & { readonly kind: "getIntent"; readonly id: string })
  | (Base & {
      readonly kind: "deploy";
      readonly id: string;
      readonly environment: string;
      readonly status: DeployStatus;
      /** ms since epoch; undefined = not given (the server's now). */
      readonly finishedAt?: number;
    })
  | (Base & {
      readonly kind: "vote";
      readonly id: string;
      readonly environment: string;
      readonly decision: "approved" | "rejected";
      readonly bypass: boolean;
      /** undefined = none sent. */
      readonly comment?: string;
    })
  | (Base & { readonly kind: "breakGlass"; readonly id: string; readonly environment: string; readonly reason: string })
  | (OrgBase & { readonly kind: "createGroup"; readonly name: string; readonly idp: string })
  | (OrgBase & { readonly kind: "deleteGroup"; readonly name: string })
  | (OrgBase & { readonly kind: "listGroups" })
  | (OrgBase & WireScope & { readonly kind: "addMember"; readonly group: string; readonly user: string })
  | (OrgBase & { readonly kind: "removeMember"; readonly group: string; readonly user: string })
  | (OrgBase &
      WireScope & {
        readonly kind: "grantRole";
        /** The test's name for the grant (the server answers its id; RevokeRoleGrant sends that). */
        readonly ref: string;
        readonly user: string;
        readonly role: string;
      })
  | (OrgBase & { readonly kind: "revokeGrant"; readonly ref: string })
  | (OrgBase & { readonly kind: "listGrants"; readonly user: string })
  | (Base & { readonly kind: "state"; readonly id: string; readonly environment: string })
  | (Base & {
      readonly kind: "evaluate";
      readonly environment: string;
      readonly branch?: string;
      readonly id?: string;
    })
  | (Base & { readonly kind: "history"; readonly environment: string })
  // Issue 13: releasegate.v1.ApprovalRequestService.
  | (Base & { readonly kind: "requestApproval"; readonly id: string; readonly environment: string })
  | (Base & { readonly kind: "cancelRequest"; readonly id: string; readonly environment: string; readonly reason?: string })
  | (Base & { readonly kind: "getRequest"; readonly id: string; readonly environment: string })
  | (Base & { readonly kind: "watch"; readonly environment: string })
  | { readonly kind: "advance"; readonly seconds: number };

/**
 * Commands that change nothing: after a disagreement on one of them the
 * sequence can go on. Not EvaluatePolicies since issue 13: an evaluation
 * opens and approves approval requests.
 */
export const READ_ONLY: ReadonlySet<Command["kind"]> = new Set([
  "getEnvs",
  "getIntent",
  "state",
  "history",
  "getRequest",
  "watch",
  "listGroups",
  "listGrants",
]);

/** The organisation a command is sent in. */
export function orgOf(cmd: Exclude<Command, { kind: "advance" }>): string {
  return "organisation" in cmd ? cmd.organisation : cmd.project.organisation;
}

/** A command as one trace line: ids shortened, invisible and non-ASCII characters escaped. */
export function show(cmd: Command, now?: number): string {
  return JSON.stringify(cmd, (key, value: unknown) => {
    if ((key === "finishedAt" || key === "expiresAt") && typeof value === "number")
      return `${new Date(value).toISOString()}${now === undefined ? "" : ` (now${value - now >= 0 ? "+" : ""}${(value - now) / 1000}s)`}`;
    if (key === "project" && typeof value === "object" && value !== null)
      return `${(value as ProjectRef).organisation}/${(value as ProjectRef).project}`;
    if (key === "id" && typeof value === "string") return value.slice(0, 8);
    return value;
  }).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
