-- Values no writer may store, whatever code it runs: the store's own checks
-- (whispr/store/_check.py) refuse them first with a clear error; these make
-- the database refuse them too, for writers that bypass that code (a
-- migration script, a sibling service, a psql session).
-- On a partitioned table the constraints apply to every partition.
ALTER TABLE messages
    ADD CONSTRAINT messages_seq_positive CHECK (seq > 0),
    ADD CONSTRAINT messages_kind_known CHECK (kind IN ('text', 'media', 'system')),
    ADD CONSTRAINT messages_reply_earlier CHECK (reply_to IS NULL OR (reply_to > 0 AND reply_to < seq));

ALTER TABLE members
    ADD CONSTRAINT members_read_seq_not_negative CHECK (read_seq >= 0);

ALTER TABLE delivered_cursors
    ADD CONSTRAINT delivered_cursors_seq_not_negative CHECK (seq >= 0);

-- Conversations by last activity, newest first, as every list shows them.
-- A user's own list is driven from members_by_user (it sorts that user's
-- few hundred rows); this index serves the scans across users: the most
-- recently active conversations (warming actors after a deploy), and the
-- least recently active ones (archiving, retention).
CREATE INDEX conversations_activity
    ON conversations ((COALESCE(last_message_at, created_at)) DESC, id DESC);
