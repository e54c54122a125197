-- Break-glass: an organisation admin's written decision that the approval
-- gate of one release intent and target environment is open, whatever the
-- votes (soak and branch policies still apply). Every use is kept; the
-- newest one is what evaluation and approval state show. Written in one
-- statement with its history row and outbox event (src/db/break-glass.repository.ts).
CREATE TABLE IF NOT EXISTS break_glass (
  seq bigserial PRIMARY KEY,
  release_intent_id uuid NOT NULL REFERENCES release_intents (id),
  environment text NOT NULL,
  organisation text NOT NULL,
  project text NOT NULL,
  user_id text NOT NULL,
  username text NOT NULL,
  reason text NOT NULL,
  recorded_at timestamptz NOT NULL,
  event_id uuid NOT NULL UNIQUE
);

-- Evaluation and approval state read the newest record of an intent+environment.
CREATE INDEX IF NOT EXISTS break_glass_intent_env_seq
  ON break_glass (release_intent_id, environment, seq DESC);

-- Like the history, a break-glass is a fact of the past: no UPDATE or DELETE.
CREATE OR REPLACE FUNCTION break_glass_immutable() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'break_glass is append-only';
END
$fn$;

DROP TRIGGER IF EXISTS break_glass_no_change ON break_glass;
CREATE TRIGGER break_glass_no_change
  BEFORE UPDATE OR DELETE ON break_glass
  FOR EACH ROW EXECUTE FUNCTION break_glass_immutable();
