-- Approval votes (one current vote per user per intent+environment), the
-- append-only history of every vote, and the transactional outbox.
CREATE TABLE IF NOT EXISTS approval_votes (
  release_intent_id uuid NOT NULL REFERENCES release_intents (id),
  environment text NOT NULL,
  user_id text NOT NULL,
  username text NOT NULL,
  decision text NOT NULL,
  decision_kind text NOT NULL,
  comment text,
  -- Order of first cast; kept when a vote changes.
  first_cast_seq bigserial NOT NULL,
  first_cast_at timestamptz NOT NULL,
  decided_at timestamptz NOT NULL,
  PRIMARY KEY (release_intent_id, environment, user_id)
);

CREATE TABLE IF NOT EXISTS approval_history (
  seq bigserial PRIMARY KEY,
  organisation text NOT NULL,
  project text NOT NULL,
  release_intent_id uuid NOT NULL REFERENCES release_intents (id),
  environment text NOT NULL,
  user_id text NOT NULL,
  username text NOT NULL,
  decision text NOT NULL,
  previous_decision text,
  decision_kind text NOT NULL,
  comment text,
  decided_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS approval_history_project_seq
  ON approval_history (organisation, project, seq);
CREATE INDEX IF NOT EXISTS approval_history_intent_seq
  ON approval_history (release_intent_id, environment, seq);

CREATE TABLE IF NOT EXISTS outbox (
  seq bigserial PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE,
  release_intent_id uuid NOT NULL,
  subject text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  published_at timestamptz
);

CREATE INDEX IF NOT EXISTS outbox_unpublished
  ON outbox (seq) WHERE published_at IS NULL;

-- History is immutable: refuse UPDATE and DELETE at the database level.
CREATE OR REPLACE FUNCTION approval_history_immutable() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'approval_history is append-only';
END
$fn$;

DROP TRIGGER IF EXISTS approval_history_no_change ON approval_history;
CREATE TRIGGER approval_history_no_change
  BEFORE UPDATE OR DELETE ON approval_history
  FOR EACH ROW EXECUTE FUNCTION approval_history_immutable();

-- Relays check for an older unpublished event of the same intent (per-intent order).
CREATE INDEX IF NOT EXISTS outbox_unpublished_intent
  ON outbox (release_intent_id, seq) WHERE published_at IS NULL;

-- The relay's hourly retention sweep deletes by publication time.
CREATE INDEX IF NOT EXISTS outbox_published_at
  ON outbox (published_at) WHERE published_at IS NOT NULL;
