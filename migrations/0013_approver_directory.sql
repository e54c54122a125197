-- The approver directory (issue "Who may approve"): approver groups with
-- their members, and role grants that raise a user's token role for a scope.
--
-- Scopes: 'organisation' (scope_id ''), 'project' (scope_id = project name),
-- 'environment' (scope_id = 'project/environment'). expires_at NULL: no end.
-- Expired rows are kept: readers compare expires_at with the server's clock,
-- so a grant stops counting at its expiry without any job.
CREATE TABLE IF NOT EXISTS approver_groups (
  organisation text NOT NULL,
  name text NOT NULL,
  idp_group text,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  PRIMARY KEY (organisation, name)
);

-- One membership per user and group: adding a member again replaces its
-- display name, scope and expiry.
CREATE TABLE IF NOT EXISTS approver_group_members (
  organisation text NOT NULL,
  group_name text NOT NULL,
  user_id text NOT NULL,
  display_name text NOT NULL,
  scope text NOT NULL,
  scope_id text NOT NULL,
  expires_at timestamptz,
  added_at timestamptz NOT NULL,
  added_by text NOT NULL,
  PRIMARY KEY (organisation, group_name, user_id),
  FOREIGN KEY (organisation, group_name) REFERENCES approver_groups (organisation, name) ON DELETE CASCADE
);

-- "Which groups is this user in" (eligibility at vote time).
CREATE INDEX IF NOT EXISTS approver_group_members_user
  ON approver_group_members (organisation, user_id);

CREATE TABLE IF NOT EXISTS role_grants (
  id uuid PRIMARY KEY,
  organisation text NOT NULL,
  user_id text NOT NULL,
  role text NOT NULL,
  scope text NOT NULL,
  scope_id text NOT NULL,
  expires_at timestamptz,
  granted_at timestamptz NOT NULL,
  granted_by text NOT NULL
);

-- Every authorised request that its token role does not settle reads the
-- caller's grants in one organisation: this index answers it.
CREATE INDEX IF NOT EXISTS role_grants_org_user
  ON role_grants (organisation, user_id);

-- Role rules read the grants that could make someone eligible at one
-- project+environment now: active ones scoped to the organisation (scope_id
-- ''), the project, or the project+environment. One index range per scope id
-- instead of every grant the organisation ever made (expired ones included).
CREATE INDEX IF NOT EXISTS role_grants_org_scope_expiry
  ON role_grants (organisation, scope_id, expires_at);

-- An evaluation lists the first few people (by id) whose active grant there
-- makes them eligible for a role rule: this index answers it without reading
-- the table (role, scope and expiry are included), however many grants the
-- organisation holds. Here, not in a later file: role_grants is this file's.
CREATE INDEX IF NOT EXISTS role_grants_org_scope_user
  ON role_grants (organisation, scope_id, user_id) INCLUDE (role, scope, expires_at);
