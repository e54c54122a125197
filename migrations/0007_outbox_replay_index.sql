-- WatchApprovalEvents resumes from an event id: it replays a project's outbox
-- events created from a little before that event on, oldest first
-- (src/db/outbox.repository.ts, outboxReplay). One index probe per resume
-- instead of a scan of every project's last 7 days of events.
CREATE INDEX IF NOT EXISTS outbox_project_created
  ON outbox ((payload->>'organisation'), (payload->>'project'), created_at);
