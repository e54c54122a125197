-- Optimistic concurrency for votes. A vote reads its intent's vote_version with
-- the current votes, decides, and writes the vote, its history row and its
-- outbox event in one statement that also bumps vote_version from the value
-- it read; if another vote got there first the statement writes nothing and
-- the vote is redone under the intent row lock (src/db/approval.repository.ts).
ALTER TABLE release_intents ADD COLUMN IF NOT EXISTS vote_version bigint NOT NULL DEFAULT 0;
