-- Per-member settings and thread reads (issue 19, parts 2 and 3).
-- A member's own view of a conversation: archived (kept out of the main list
-- by clients) and its place among the user's pinned conversations (NULL: not
-- pinned; lower first). Mute and notification level were there from 0001;
-- "muted forever" is a muted_until far in the future (actors/rules.py,
-- MUTED_FOREVER), so no column is needed for it.
ALTER TABLE members
    ADD COLUMN archived  boolean NOT NULL DEFAULT false,
    ADD COLUMN pin_order integer CHECK (pin_order IS NULL OR pin_order >= 0);

-- list_thread: the replies to one message, by seq, without scanning the
-- conversation. Partial: most messages reply to nothing.
CREATE INDEX messages_replies ON messages (conversation_id, reply_to, seq)
    WHERE reply_to IS NOT NULL;
