-- Outbox leases. A relay claims unpublished rows by setting `claimed_until`
-- (database clock) and its own `claim_token` in one short statement, commits,
-- publishes to NATS with no transaction or row lock held, then marks the rows
-- that still carry its token (src/db/outbox.repository.ts). A relay that dies
-- mid-publish leaves rows whose lease runs out; another relay claims them and
-- publishes again, and JetStream drops the repeat by its Nats-Msg-Id (the
-- event id) as long as the lease is well inside the stream's duplicate window.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claim_token uuid;
