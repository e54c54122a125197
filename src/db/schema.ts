import type { ColumnType, Generated, JSONColumnType } from "kysely";

/** Kysely table interfaces; keep in step with `migrations/`. */
export interface PoliciesTable {
  id: string;
  organisation: string;
  project: string;
  name: string;
  enabled: boolean;
  policy_type: string;
  config: JSONColumnType<Record<string, unknown>, string, string>;
  created_at: ColumnType<Date, Date, Date>;
  updated_at: ColumnType<Date, Date, Date>;
}

export interface ReleaseIntentsTable {
  id: string;
  organisation: string;
  project: string;
  author_user_id: string;
  author_username: string;
  branch: string;
  version: string;
  created_at: ColumnType<Date, Date, never>;
  /** Token subject of whoever registered the intent. */
  registered_by_user_id: string;
  /** `user` or `service`: the registrant's actor type. */
  registered_by_actor_type: string;
  /** Bumped by every vote on the intent (optimistic concurrency; bigint, read as text). */
  vote_version: Generated<string>;
  /** Order of registration (migrations/0017): what "newer" means to supersede-pending. */
  registered_seq: Generated<string>;
}

export interface DeploymentsTable {
  id: Generated<string>;
  organisation: string;
  project: string;
  environment: string;
  release_intent_id: string;
  status: string;
  /** The pipeline's report of when the deploy finished. */
  finished_at: ColumnType<Date, Date, never>;
  /** The server's clock when releasegate recorded it: what soak time counts from. */
  recorded_at: ColumnType<Date, Date, never>;
}

export interface ApprovalVotesTable {
  release_intent_id: string;
  environment: string;
  user_id: string;
  username: string;
  decision: string;
  decision_kind: string;
  comment: string | null;
  first_cast_seq: Generated<string>;
  first_cast_at: ColumnType<Date, Date, never>;
  decided_at: ColumnType<Date, Date, Date>;
  /** The voter's identity-provider groups at vote time (JSON array of strings); null before approval rules. */
  voter_idp_groups: ColumnType<string[] | null, string | null, string | null>;
  /** The role the voter's token gave them in the organisation at vote time. */
  voter_token_role: string | null;
  /** The approval request the vote was cast on (null: cast before requests existed). */
  request_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ApprovalHistoryTable {
  seq: Generated<string>;
  organisation: string;
  project: string;
  release_intent_id: string;
  environment: string;
  user_id: string;
  username: string;
  decision: string;
  previous_decision: string | null;
  decision_kind: string;
  comment: string | null;
  decided_at: ColumnType<Date, Date, never>;
  voter_idp_groups: ColumnType<string[] | null, string | null, never>;
  voter_token_role: ColumnType<string | null, string | null, never>;
}

export interface OutboxTable {
  seq: Generated<string>;
  event_id: string;
  release_intent_id: string;
  subject: string;
  payload: JSONColumnType<Record<string, unknown>, string, never>;
  created_at: ColumnType<Date, Date, never>;
  published_at: ColumnType<Date | null, never, Date>;
}

/** One use of break-glass (append-only); the newest per intent+environment counts. */
export interface BreakGlassTable {
  seq: Generated<string>;
  release_intent_id: string;
  environment: string;
  organisation: string;
  project: string;
  user_id: string;
  username: string;
  reason: string;
  recorded_at: ColumnType<Date, Date, never>;
  event_id: string;
}

export interface ProjectEnvironmentsTable {
  organisation: string;
  project: string;
  /** Declared environment names, folded, in declaration order (never empty: no row = no declaration). */
  environments: string[];
  updated_at: ColumnType<Date, Date, Date>;
  /** Token subject of the admin who declared them. */
  updated_by: string;
}

export interface ApproverGroupsTable {
  organisation: string;
  name: string;
  /** Identity-provider group whose token holders are members at vote time. */
  idp_group: string | null;
  created_at: ColumnType<Date, Date, never>;
  created_by: string;
}

export interface ApproverGroupMembersTable {
  organisation: string;
  group_name: string;
  user_id: string;
  display_name: string;
  /** `organisation`, `project` or `environment`. */
  scope: string;
  /** '' (organisation), project, or `project/environment`. */
  scope_id: string;
  expires_at: Date | null;
  added_at: Date;
  added_by: string;
}

export interface RoleGrantsTable {
  id: string;
  organisation: string;
  user_id: string;
  role: string;
  scope: string;
  scope_id: string;
  expires_at: ColumnType<Date | null, Date | null, never>;
  granted_at: ColumnType<Date, Date, never>;
  granted_by: string;
}

/** Approval requests (migrations/0016_approval_requests.sql). */
export type ApprovalRequestStateValue = "pending" | "approved" | "rejected" | "expired" | "superseded" | "cancelled";

export interface ApprovalRequestsTable {
  id: string;
  /** Order of opening (bigserial, read as text): the newest request has the greatest. */
  seq: Generated<string>;
  organisation: string;
  project: string;
  release_intent_id: string;
  environment: string;
  state: ApprovalRequestStateValue;
  requested_by_user_id: string;
  requested_by_actor_type: string;
  opened_by: "request" | "evaluation" | "vote";
  requested_at: ColumnType<Date, Date, never>;
  expires_at: Date | null;
  decided_at: Date | null;
  decided_by: string | null;
  decision_reason: string | null;
  superseded_by: string | null;
  updated_at: Date;
}

/** Webhook subscriptions (migrations/0018_webhooks.sql). */
export interface WebhookSubscriptionsTable {
  id: string;
  organisation: string;
  project: string | null;
  environment: string | null;
  url: string;
  event_kinds: string[];
  format: "json" | "slack";
  secret: string;
  enabled: boolean;
  created_by: string;
  created_at: ColumnType<Date, Date, never>;
  updated_at: Date;
}

export type WebhookDeliveryStatusValue = "pending" | "delivered" | "failed_retrying" | "dead";

/** Webhook deliveries, one per (subscription, event), written by the outbox trigger of 0018. */
export interface WebhookDeliveriesTable {
  id: Generated<string>;
  subscription_id: string;
  event_id: string;
  kind: string;
  release_intent_id: string;
  environment: string;
  payload: unknown;
  status: WebhookDeliveryStatusValue;
  attempts: number;
  last_error: string | null;
  last_status_code: number | null;
  next_attempt_at: Date;
  claimed_until: Date | null;
  claim_token: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

export interface DB {
  policies: PoliciesTable;
  release_intents: ReleaseIntentsTable;
  deployments: DeploymentsTable;
  approval_votes: ApprovalVotesTable;
  approval_history: ApprovalHistoryTable;
  outbox: OutboxTable;
  break_glass: BreakGlassTable;
  project_environments: ProjectEnvironmentsTable;
  approver_groups: ApproverGroupsTable;
  approver_group_members: ApproverGroupMembersTable;
  role_grants: RoleGrantsTable;
  approval_requests: ApprovalRequestsTable;
  webhook_subscriptions: WebhookSubscriptionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}
