-- Tell every replica when a project's policies change, so their compiled-policy
-- caches drop it (src/policy/policy-cache.ts). NOTIFY is transactional: it is
-- delivered on commit, never for a rolled-back change, and a trigger catches
-- every writer (any replica, any SQL). Payload: ["organisation","project"].
CREATE OR REPLACE FUNCTION releasegate_notify_policy_changed() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
DECLARE
  changed policies%ROWTYPE;
BEGIN
  IF TG_OP = 'DELETE' THEN
    changed := OLD;
  ELSE
    changed := NEW;
  END IF;
  PERFORM pg_notify('releasegate_policy_changed', json_build_array(changed.organisation, changed.project)::text);
  -- A policy moved to another project (not done today) invalidates both.
  IF TG_OP = 'UPDATE' AND (OLD.organisation, OLD.project) IS DISTINCT FROM (NEW.organisation, NEW.project) THEN
    PERFORM pg_notify('releasegate_policy_changed', json_build_array(OLD.organisation, OLD.project)::text);
  END IF;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS policies_notify_changed ON policies;
CREATE TRIGGER policies_notify_changed
  AFTER INSERT OR UPDATE OR DELETE ON policies
  FOR EACH ROW EXECUTE FUNCTION releasegate_notify_policy_changed();
