-- Policies, release intents and deployments. Every statement is idempotent so
-- the file can be applied twice without error.
CREATE TABLE IF NOT EXISTS policies (
  id uuid PRIMARY KEY,
  organisation text NOT NULL,
  project text NOT NULL,
  name text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  policy_type text NOT NULL,
  config jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CONSTRAINT policies_project_name_key UNIQUE (organisation, project, name)
);

CREATE TABLE IF NOT EXISTS release_intents (
  id uuid PRIMARY KEY,
  organisation text NOT NULL,
  project text NOT NULL,
  author_user_id text NOT NULL,
  author_username text NOT NULL,
  branch text NOT NULL DEFAULT '',
  version text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS deployments (
  id bigserial PRIMARY KEY,
  organisation text NOT NULL,
  project text NOT NULL,
  environment text NOT NULL,
  release_intent_id uuid NOT NULL REFERENCES release_intents (id),
  status text NOT NULL,
  finished_at timestamptz NOT NULL
);

-- Soak time reads "latest successful deploy to env" per project and per intent.
CREATE INDEX IF NOT EXISTS deployments_project_env_latest
  ON deployments (organisation, project, environment, finished_at DESC)
  WHERE status = 'succeeded';
CREATE INDEX IF NOT EXISTS deployments_intent_env_latest
  ON deployments (release_intent_id, environment, finished_at DESC)
  WHERE status = 'succeeded';
