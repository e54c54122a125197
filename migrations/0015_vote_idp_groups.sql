-- What a voter brought to a vote that the directory cannot know later: the
-- identity-provider groups in their token and the role their token gave them
-- in the organisation. Approval rules judge eligibility again when votes are
-- counted; memberships and grants are read then, these are read from here.
-- Null: a vote from before approval rules (no groups, no recorded role).
ALTER TABLE approval_votes ADD COLUMN IF NOT EXISTS voter_idp_groups jsonb;
ALTER TABLE approval_votes ADD COLUMN IF NOT EXISTS voter_token_role text;
ALTER TABLE approval_history ADD COLUMN IF NOT EXISTS voter_idp_groups jsonb;
ALTER TABLE approval_history ADD COLUMN IF NOT EXISTS voter_token_role text;
