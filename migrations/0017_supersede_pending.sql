-- Supersede-pending policies (issue 13). Evaluation asks for the first
-- intent of a project's branch registered after a given one
-- (src/db/supersede.repository.ts, readSupersedeFacts); the project-wide
-- question uses release_intents_project_created (0009), and registration's
-- look-up of older pending requests uses approval_requests_pending_org (0016).
CREATE INDEX IF NOT EXISTS release_intents_project_branch_created
  ON release_intents (organisation, project, branch, created_at, id);
