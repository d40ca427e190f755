-- Scheduled messages and disappearing messages: two durable timer queues.
--
-- Each queue is a table with a `due_at` column and an index on it. A node's scheduler reads
-- only the head of each index (`ORDER BY due_at LIMIT n`), never the whole table, and claims
-- due rows with `FOR UPDATE SKIP LOCKED`, moving `due_at` forward by a lease: a node that
-- dies holding a claim lets the lease run out, and another node takes the row again.

-- An expired message keeps its row as a stub (content, attachments and metadata wiped,
-- `deleted` set) so that its seq never becomes a hole and its client id still makes a
-- retried send a duplicate rather than the same message again; every read leaves it out.
ALTER TABLE messages ADD COLUMN expired boolean NOT NULL DEFAULT false;

CREATE TABLE scheduled_messages (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    sender_id       text NOT NULL,
    client_id       text NOT NULL,
    -- The message as it will be sent (kind, content, attachments, reply_to, metadata, ttl).
    draft           jsonb NOT NULL,
    send_at         double precision NOT NULL,
    created_at      double precision NOT NULL,
    -- send_at until claimed; then the end of the claim's lease.
    due_at          double precision NOT NULL,
    -- Claims so far: a schedule claimed once may have been sent, so it no longer changes.
    attempts        integer NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, sender_id, client_id)
);
CREATE INDEX scheduled_messages_due ON scheduled_messages (due_at, id);
CREATE INDEX scheduled_messages_by_author
    ON scheduled_messages (conversation_id, sender_id, send_at);

CREATE TABLE message_expiries (
    conversation_id text NOT NULL,
    seq             bigint NOT NULL,
    expires_at      double precision NOT NULL,
    due_at          double precision NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX message_expiries_due ON message_expiries (due_at, conversation_id, seq);

-- A message written with `metadata.expires_at` (set by the conversation actor from the
-- message's TTL or the conversation's setting) gets its expiry row in the same
-- transaction, whichever path wrote it: the timer is as durable as the message.
CREATE FUNCTION note_message_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at double precision := (NEW.metadata ->> 'expires_at')::double precision;
BEGIN
    INSERT INTO message_expiries (conversation_id, seq, expires_at, due_at)
    VALUES (NEW.conversation_id, NEW.seq, at, at)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_note_expiry AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.metadata ? 'expires_at')
    EXECUTE FUNCTION note_message_expiry();
