-- Role rules read the grants that could make someone eligible at one
-- project+environment now: active ones scoped to the organisation (scope_id
-- ''), the project, or the project+environment. One index range per scope id
-- instead of every grant the organisation ever made (expired ones included).
CREATE INDEX IF NOT EXISTS role_grants_org_scope_expiry
  ON role_grants (organisation, scope_id, expires_at);
