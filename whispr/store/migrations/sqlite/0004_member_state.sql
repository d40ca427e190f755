-- Per-member settings and thread reads (issue 19, parts 2 and 3): see the
-- PostgreSQL edition, 0008_member_state.sql.
ALTER TABLE members ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN pin_order INTEGER CHECK (pin_order IS NULL OR pin_order >= 0);

CREATE INDEX messages_replies ON messages (conversation_id, reply_to, seq)
    WHERE reply_to IS NOT NULL;
