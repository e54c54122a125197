-- Approval history sequence numbers in commit order, per project.
--
-- ListApprovalHistory pages a project's history by `seq` (keyset paging). A
-- sequence hands out numbers when rows are inserted, not when they commit: a
-- slow vote could take seq 10, a fast one 11 and commit first; a reader that
-- got 11 pages on after it and never sees 10. So the number is taken only
-- under a transaction-scoped advisory lock on the row's (organisation,
-- project): the next writer of that project waits until the previous one has
-- ended, and Postgres releases transaction locks only after the commit is
-- visible to new snapshots (ProcArrayEndTransaction precedes the lock
-- release). Within one project, therefore, a row with a higher seq is never
-- visible before every lower one that will ever commit; a rolled-back writer
-- leaves a gap that is never filled.
--
-- Cost: history inserts of one project are serialised until their
-- transactions commit. They come from votes (people clicking), whose writes
-- are one statement or a short transaction, so the wait is a few
-- milliseconds at most; other projects are not affected. The two-key form
-- of the lock keeps these keys apart from single-key advisory locks (the
-- migrator's); a hash collision between projects only serialises more.
--
-- The column default is dropped so that no number is drawn before the lock.
CREATE OR REPLACE FUNCTION approval_history_assign_seq() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(1919248488, hashtext(json_build_array(NEW.organisation, NEW.project)::text));
  NEW.seq := nextval('approval_history_seq_seq');
  RETURN NEW;
END
$fn$;

ALTER TABLE approval_history ALTER COLUMN seq DROP DEFAULT;

DROP TRIGGER IF EXISTS approval_history_seq_in_commit_order ON approval_history;
CREATE TRIGGER approval_history_seq_in_commit_order
  BEFORE INSERT ON approval_history
  FOR EACH ROW EXECUTE FUNCTION approval_history_assign_seq();
