-- Environment names are case-insensitive from now on: every RPC folds ASCII
-- A-Z to a-z and then requires ^[a-z0-9][a-z0-9._-]{0,62}$
-- (src/environment/environment-name.ts). This folds the rows written before,
-- so `Prod` stored yesterday is the `prod` a request names today.
--   - translate(), not lower(): lower() follows the database's locale and
--     would also fold non-ASCII letters, which requests never fold.
--   - A name that is still invalid after folding is left as it is: no
--     request can name it any more, and rewriting it would only lose evidence.
--   - The outbox is left alone: published events are facts of the past.
-- Idempotent: a second run finds nothing left to fold.
CREATE OR REPLACE FUNCTION releasegate_fold_environment(name text) RETURNS text
  LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE
    WHEN translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') ~ '^[a-z0-9][a-z0-9._-]{0,62}$'
      THEN translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
    ELSE name
  END
$fn$;

UPDATE policies
  SET config = jsonb_set(config, '{targetEnvironment}', to_jsonb(releasegate_fold_environment(config->>'targetEnvironment')))
  WHERE jsonb_typeof(config->'targetEnvironment') = 'string'
    AND config->>'targetEnvironment' <> releasegate_fold_environment(config->>'targetEnvironment');

UPDATE policies
  SET config = jsonb_set(config, '{sourceEnvironment}', to_jsonb(releasegate_fold_environment(config->>'sourceEnvironment')))
  WHERE jsonb_typeof(config->'sourceEnvironment') = 'string'
    AND config->>'sourceEnvironment' <> releasegate_fold_environment(config->>'sourceEnvironment');

UPDATE deployments
  SET environment = releasegate_fold_environment(environment)
  WHERE environment <> releasegate_fold_environment(environment);

-- One current vote per (intent, environment, user): where two spellings of one
-- environment both hold a vote of the same user, the most recent decision
-- stays (ties: the later first cast) and the other goes. Its history rows stay.
DELETE FROM approval_votes AS older
  USING approval_votes AS newer
  WHERE older.release_intent_id = newer.release_intent_id
    AND older.user_id = newer.user_id
    AND older.environment <> newer.environment
    AND releasegate_fold_environment(older.environment) = releasegate_fold_environment(newer.environment)
    AND (older.decided_at, older.first_cast_seq) < (newer.decided_at, newer.first_cast_seq);

UPDATE approval_votes
  SET environment = releasegate_fold_environment(environment)
  WHERE environment <> releasegate_fold_environment(environment);

-- History is append-only (0002's trigger); this one rewrite of names happens
-- with the trigger off, inside the migration's transaction, so no other
-- writer ever sees it off and a failure anywhere rolls the whole run back.
ALTER TABLE approval_history DISABLE TRIGGER approval_history_no_change;

UPDATE approval_history
  SET environment = releasegate_fold_environment(environment)
  WHERE environment <> releasegate_fold_environment(environment);

ALTER TABLE approval_history ENABLE TRIGGER approval_history_no_change;

DROP FUNCTION IF EXISTS releasegate_fold_environment(text);
