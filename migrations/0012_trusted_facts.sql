-- Facts a caller cannot fake (issue "No way around the gate").
--
-- Soak time counts from when releasegate recorded a successful deployment
-- (the server's clock), never from the pipeline's `finished_at`, which is kept
-- as its report. Rows recorded before this column existed get the earliest
-- time they can have been recorded at: not before their intent was
-- registered, and not before the finish time the pipeline reported.
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS recorded_at timestamptz;
UPDATE deployments d SET recorded_at = greatest(d.finished_at, i.created_at)
  FROM release_intents i
 WHERE d.recorded_at IS NULL AND i.id = d.release_intent_id;
ALTER TABLE deployments ALTER COLUMN recorded_at SET DEFAULT now();
ALTER TABLE deployments ALTER COLUMN recorded_at SET NOT NULL;

-- Soak reads "latest successful deploy to env" by recording time now.
CREATE INDEX IF NOT EXISTS deployments_project_env_recorded
  ON deployments (organisation, project, environment, recorded_at DESC)
  WHERE status = 'succeeded';
CREATE INDEX IF NOT EXISTS deployments_intent_env_recorded
  ON deployments (release_intent_id, environment, recorded_at DESC)
  WHERE status = 'succeeded';
DROP INDEX IF EXISTS deployments_project_env_latest;
DROP INDEX IF EXISTS deployments_intent_env_latest;

-- Who registered an intent (the token's subject and whether it was a person
-- or a service): four eyes cover a person who registers on someone's behalf.
-- Intents from before this column existed were registered by their author as
-- far as anyone can tell.
ALTER TABLE release_intents ADD COLUMN IF NOT EXISTS registered_by_user_id text;
ALTER TABLE release_intents ADD COLUMN IF NOT EXISTS registered_by_actor_type text;
UPDATE release_intents SET registered_by_user_id = author_user_id WHERE registered_by_user_id IS NULL;
UPDATE release_intents SET registered_by_actor_type = 'user' WHERE registered_by_actor_type IS NULL;
ALTER TABLE release_intents ALTER COLUMN registered_by_user_id SET NOT NULL;
ALTER TABLE release_intents ALTER COLUMN registered_by_actor_type SET NOT NULL;
