-- A project's declared environments (releasegate.v1.EnvironmentService). No
-- row means no declaration: every valid environment name is accepted. The
-- list keeps the order the admin gave (messages list it that way).
CREATE TABLE IF NOT EXISTS project_environments (
  organisation text NOT NULL,
  project text NOT NULL,
  environments text[] NOT NULL,
  updated_at timestamptz NOT NULL,
  updated_by text NOT NULL,
  PRIMARY KEY (organisation, project)
);

-- Every replica caches a project's declaration together with its policies
-- (src/policy/policy-cache.ts): a change notifies the policies' channel with
-- the same payload, ["organisation","project"], so one invalidation covers both.
CREATE OR REPLACE FUNCTION releasegate_notify_project_environments_changed() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
DECLARE
  changed project_environments%ROWTYPE;
BEGIN
  IF TG_OP = 'DELETE' THEN
    changed := OLD;
  ELSE
    changed := NEW;
  END IF;
  PERFORM pg_notify('releasegate_policy_changed', json_build_array(changed.organisation, changed.project)::text);
  IF TG_OP = 'UPDATE' AND (OLD.organisation, OLD.project) IS DISTINCT FROM (NEW.organisation, NEW.project) THEN
    PERFORM pg_notify('releasegate_policy_changed', json_build_array(OLD.organisation, OLD.project)::text);
  END IF;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS project_environments_notify_changed ON project_environments;
CREATE TRIGGER project_environments_notify_changed
  AFTER INSERT OR UPDATE OR DELETE ON project_environments
  FOR EACH ROW EXECUTE FUNCTION releasegate_notify_project_environments_changed();
