-- Approval requests (issue 13): one per release intent and target
-- environment at a time, with a life. `pending` is the only state that
-- changes; approved, rejected, expired, superseded and cancelled are final.
-- A new request for the same intent+environment after a final one starts
-- with no votes: a vote belongs to the request it was cast on
-- (approval_votes.request_id), and counting reads the current request's.
CREATE TABLE IF NOT EXISTS approval_requests (
  id uuid PRIMARY KEY,
  -- Order of opening: what "newest" means (two requests may share a
  -- requested_at instant; their random ids say nothing about order).
  seq bigserial NOT NULL,
  organisation text NOT NULL,
  project text NOT NULL,
  release_intent_id uuid NOT NULL REFERENCES release_intents (id),
  environment text NOT NULL,
  state text NOT NULL
    CONSTRAINT approval_requests_state_check
    CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'superseded', 'cancelled')),
  -- Who asked: the caller of RequestApproval (opened_by 'request'), of the
  -- EvaluatePolicies that opened it ('evaluation'), or of the first vote on
  -- an intent+environment without a request ('vote': Forest's clients vote
  -- without asking).
  requested_by_user_id text NOT NULL,
  requested_by_actor_type text NOT NULL,
  opened_by text NOT NULL CONSTRAINT approval_requests_opened_by_check CHECK (opened_by IN ('request', 'evaluation', 'vote')),
  requested_at timestamptz NOT NULL,
  -- When a pending request expires (the policy's request timeout); NULL: never.
  expires_at timestamptz,
  decided_at timestamptz,
  -- A user id, or 'system' for the reaper and supersede.
  decided_by text,
  -- Why it ended, in words a person can act on.
  decision_reason text,
  -- The newer intent that superseded this one.
  superseded_by uuid REFERENCES release_intents (id),
  updated_at timestamptz NOT NULL,
  CONSTRAINT approval_requests_final_check CHECK ((state = 'pending') = (decided_at IS NULL))
);

-- At most one pending request per intent and environment.
CREATE UNIQUE INDEX IF NOT EXISTS approval_requests_one_pending
  ON approval_requests (release_intent_id, environment) WHERE state = 'pending';
-- The newest request of an intent and environment (evaluation, votes, GetApprovalRequest).
CREATE INDEX IF NOT EXISTS approval_requests_intent_env
  ON approval_requests (release_intent_id, environment, seq DESC);
-- The inbox and its count: pending requests of an organisation, oldest first.
CREATE INDEX IF NOT EXISTS approval_requests_pending_org
  ON approval_requests (organisation, requested_at, id) WHERE state = 'pending';
-- The inbox per project and environment (eligibility is decided once per
-- pair): the count groups the pending requests of an organisation by
-- (project, environment) in an index-only scan, then probes the intent and
-- the caller's vote by primary key; a filter by project (and environment)
-- reads only that project's pending requests, oldest first (expires_at: a
-- request already due counts as expired before the reaper gets to it).
CREATE INDEX IF NOT EXISTS approval_requests_pending_org_project
  ON approval_requests (organisation, project, environment, requested_at, id, release_intent_id, expires_at)
  WHERE state = 'pending';
-- The reaper: pending requests that are due.
CREATE INDEX IF NOT EXISTS approval_requests_pending_expiry
  ON approval_requests (expires_at) WHERE state = 'pending' AND expires_at IS NOT NULL;

-- The request a current vote was cast on (NULL: cast before requests existed).
ALTER TABLE approval_votes ADD COLUMN IF NOT EXISTS request_id uuid REFERENCES approval_requests (id);
