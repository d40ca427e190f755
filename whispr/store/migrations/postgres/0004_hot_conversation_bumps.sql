-- Every batch of sends updates its conversations' rows (last_seq, last_message_at).
-- conversations_activity indexed last_message_at, so each of those updates was a
-- non-HOT update: a new row version plus an entry in both indexes, and dead
-- versions left for vacuum to clear (a busy conversation's row was rewritten
-- thousands of times a minute and both indexes grew with it). Nothing queries the
-- index: a user's list starts from members_by_user and sorts that user's rows.
-- Without it, no index covers the columns a send changes, so the update is HOT:
-- the new version goes on the same page, no index is touched, and the old one is
-- pruned by the next reader of the page. The fill factor keeps room on each page
-- for those versions (rows are small; 70% still packs tens of them per page).
-- Pages written before this fill as they are; VACUUM FULL conversations, at a
-- quiet time, lays them out again.
DROP INDEX IF EXISTS conversations_activity;
ALTER TABLE conversations SET (fillfactor = 70);
