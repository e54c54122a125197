/**
 * The commands the gate-safety test sends to the reference model and to the
 * service, and the callers that send them. Plain data, so a failing trace
 * prints as it was sent.
 */

export type Role = "admin" | "member";

export interface Caller {
  readonly sub: string;
  /** Role per organisation; no entry means no role there. */
  readonly roles: Readonly<Record<string, Role>>;
  /** A pipeline token (`actor_type: "service"`). */
  readonly service: boolean;
}

export const ORGS = ["acme", "globex"] as const;
export const PROJECTS = ["web", "api"] as const;

/**
 * Per-org admins, members of both organisations, members of only one, and
 * services (pipelines). ada is admin of acme but only a member of globex.
 */
export const CALLERS: Readonly<Record<string, Caller>> = {
  ada: { sub: "ada", roles: { acme: "admin", globex: "member" }, service: false },
  gus: { sub: "gus", roles: { globex: "admin" }, service: false },
  bob: { sub: "bob", roles: { acme: "member", globex: "member" }, service: false },
  alice: { sub: "alice", roles: { acme: "member", globex: "member" }, service: false },
  carol: { sub: "carol", roles: { acme: "member" }, service: false },
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
  | { readonly kind: "approval"; readonly target: string; readonly required: number };

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
    })
  | (Base & { readonly kind: "state"; readonly id: string; readonly environment: string })
  | (Base & {
      readonly kind: "evaluate";
      readonly environment: string;
      readonly branch?: string;
      readonly id?: string;
    })
  | (Base & { readonly kind: "history"; readonly environment: string })
  | (Base & { readonly kind: "watch"; readonly environment: string })
  | { readonly kind: "advance"; readonly seconds: number };

/** Commands that change nothing: after a disagreement on one of them the sequence can go on. */
export const READ_ONLY: ReadonlySet<Command["kind"]> = new Set(["getEnvs", "getIntent", "state", "evaluate", "history", "watch"]);

/** A command as one trace line: ids shortened, invisible and non-ASCII characters escaped. */
export function show(cmd: Command, now?: number): string {
  return JSON.stringify(cmd, (key, value: unknown) => {
    if (key === "finishedAt" && typeof value === "number")
      return `${new Date(value).toISOString()}${now === undefined ? "" : ` (now${value - now >= 0 ? "+" : ""}${(value - now) / 1000}s)`}`;
    if (key === "project" && typeof value === "object" && value !== null)
      return `${(value as ProjectRef).organisation}/${(value as ProjectRef).project}`;
    if (key === "id" && typeof value === "string") return value.slice(0, 8);
    return value;
  }).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
