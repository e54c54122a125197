-- Webhook subscriptions and their deliveries (issue 13, src/notify/).
-- A delivery row per (subscription, event) is written by a trigger on the
-- outbox, in the transaction that writes the event: the outbox stays the one
-- spine, no writer of outbox rows (votes, break-glass, request lifecycle)
-- needs to know about webhooks, and a committed event can never lack its
-- deliveries. Deliveries copy the event payload because the relay's
-- retention sweep deletes published outbox rows.
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
  id uuid PRIMARY KEY,
  organisation text NOT NULL,
  -- NULL: every project / every environment.
  project text,
  environment text,
  url text NOT NULL,
  event_kinds text[] NOT NULL,
  format text NOT NULL CONSTRAINT webhook_subscriptions_format_check CHECK (format IN ('json', 'slack')),
  -- HMAC-SHA256 key of the signature header; never returned by the API.
  secret text NOT NULL,
  enabled boolean NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- ListWebhooks (oldest first) and the outbox trigger's match by organisation.
CREATE INDEX IF NOT EXISTS webhook_subscriptions_org
  ON webhook_subscriptions (organisation, created_at, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id bigserial PRIMARY KEY,
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  event_id uuid NOT NULL,
  kind text NOT NULL,
  release_intent_id uuid NOT NULL,
  environment text NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL
    CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed_retrying', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  last_status_code integer,
  -- Database clock, like the relay's leases: every replica agrees on it.
  next_attempt_at timestamptz NOT NULL,
  claimed_until timestamptz,
  claim_token uuid,
  created_at timestamptz NOT NULL,
  delivered_at timestamptz,
  CONSTRAINT webhook_deliveries_once UNIQUE (subscription_id, event_id)
);

-- The worker's claim: due deliveries not yet delivered or dead.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
  ON webhook_deliveries (next_attempt_at, id) WHERE status IN ('pending', 'failed_retrying');
-- Order per request: an earlier open delivery of the same subscription, intent and environment.
CREATE INDEX IF NOT EXISTS webhook_deliveries_open_request
  ON webhook_deliveries (subscription_id, release_intent_id, environment, id)
  WHERE status IN ('pending', 'failed_retrying');
-- The claim's cap on a subscription's unexpired leases (only rows under a lease).
CREATE INDEX IF NOT EXISTS webhook_deliveries_leased
  ON webhook_deliveries (subscription_id) WHERE claimed_until IS NOT NULL;
-- The delivery log of a subscription, newest first.
CREATE INDEX IF NOT EXISTS webhook_deliveries_log
  ON webhook_deliveries (subscription_id, id);

CREATE OR REPLACE FUNCTION webhook_deliveries_from_outbox() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO webhook_deliveries
    (subscription_id, event_id, kind, release_intent_id, environment, payload, status, next_attempt_at, created_at)
  SELECT s.id, NEW.event_id, NEW.payload->>'kind', NEW.release_intent_id, NEW.payload->>'environment', NEW.payload,
         'pending', clock_timestamp(), clock_timestamp()
    FROM webhook_subscriptions s
   WHERE s.organisation = NEW.payload->>'organisation'
     AND s.enabled
     AND (s.project IS NULL OR s.project = NEW.payload->>'project')
     AND (s.environment IS NULL OR s.environment = NEW.payload->>'environment')
     AND (NEW.payload->>'kind') = ANY (s.event_kinds)
  ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS outbox_webhook_deliveries ON outbox;
CREATE TRIGGER outbox_webhook_deliveries
  AFTER INSERT ON outbox
  FOR EACH ROW EXECUTE FUNCTION webhook_deliveries_from_outbox();
