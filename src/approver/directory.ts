import type { Role } from "../auth/roles.js";

/** What a grant or a membership applies to. */
export type ScopeKind = "organisation" | "project" | "environment";

/** The scope kinds, in the order the wire and the CLI list them. */
export const SCOPE_KINDS: readonly ScopeKind[] = ["organisation", "project", "environment"];

/**
 * A grant's or membership's scope inside its organisation. `id` is `""` for
 * `organisation`, the project name for `project`, `project/environment`
 * (environment folded) for `environment`.
 */
export interface Scope {
  readonly kind: ScopeKind;
  readonly id: string;
}

/** Where a request acts inside an organisation: no project means organisation-wide. */
export interface Location {
  readonly project?: string;
  readonly environment?: string;
}

/** Something that may end: absent `expiresAt` never does. */
export interface Expiring {
  readonly expiresAt?: Date;
}

/** A role raised for a user in a scope, optionally until `expiresAt`. */
export interface RoleGrant extends Expiring {
  readonly id: string;
  readonly organisation: string;
  readonly userId: string;
  readonly role: Role;
  readonly scope: Scope;
  readonly grantedAt: Date;
  readonly grantedBy: string;
}

/** A user's membership of an approver group, optionally scoped and expiring. */
export interface GroupMember extends Expiring {
  readonly organisation: string;
  readonly groupName: string;
  readonly userId: string;
  readonly displayName: string;
  readonly scope: Scope;
  readonly addedAt: Date;
  readonly addedBy: string;
}

/** An approver group of an organisation, with its managed members. */
export interface ApproverGroup {
  readonly organisation: string;
  readonly name: string;
  /** Identity-provider group whose token holders are members at vote time. */
  readonly idpGroup?: string;
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly members: readonly GroupMember[];
}
