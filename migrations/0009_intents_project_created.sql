-- The /metrics scrape looks at each gated project's most recent intents only
-- (src/metrics-queries.ts, pendingApprovalAges): an index probe per gated
-- environment with a LIMIT, instead of a scan of every intent of the window.
CREATE INDEX IF NOT EXISTS release_intents_project_created
  ON release_intents (organisation, project, created_at DESC);
