-- Supersede-pending policies (issue 13). "Newer" is the order of
-- registration: registered_seq, drawn when the intent is inserted. (Two
-- intents may share a created_at instant, and then neither the clock nor the
-- id says which came second.) Existing rows are numbered in created_at order.
-- Evaluation asks for the first intent of the project (or of its branch)
-- registered after a given one (src/db/supersede.repository.ts), which these
-- indexes answer with one probe each.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_name = 'release_intents' AND column_name = 'registered_seq') THEN
    CREATE SEQUENCE IF NOT EXISTS release_intents_registered_seq_seq;
    ALTER TABLE release_intents ADD COLUMN registered_seq bigint;
    UPDATE release_intents r SET registered_seq = o.n
      FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM release_intents) o
      WHERE r.id = o.id;
    PERFORM setval('release_intents_registered_seq_seq', coalesce((SELECT max(registered_seq) FROM release_intents), 0) + 1, false);
    ALTER TABLE release_intents ALTER COLUMN registered_seq SET DEFAULT nextval('release_intents_registered_seq_seq');
    ALTER TABLE release_intents ALTER COLUMN registered_seq SET NOT NULL;
    ALTER SEQUENCE release_intents_registered_seq_seq OWNED BY release_intents.registered_seq;
  END IF;
END
$$;

CREATE INDEX IF NOT EXISTS release_intents_project_registered
  ON release_intents (organisation, project, registered_seq);
CREATE INDEX IF NOT EXISTS release_intents_project_branch_registered
  ON release_intents (organisation, project, branch, registered_seq);
