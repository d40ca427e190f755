-- Scheduled messages and disappearing messages (the PostgreSQL edition, migration 0012,
-- says more). SQLite has no trigger here: the store writes a message's expiry row in the
-- batch's transaction itself (the migration runner splits statements at semicolons).
ALTER TABLE messages ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;

CREATE TABLE scheduled_messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    sender_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    draft           TEXT NOT NULL,
    send_at         REAL NOT NULL,
    created_at      REAL NOT NULL,
    due_at          REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, sender_id, client_id)
);
CREATE INDEX scheduled_messages_due ON scheduled_messages (due_at, id);
CREATE INDEX scheduled_messages_by_author
    ON scheduled_messages (conversation_id, sender_id, send_at);

CREATE TABLE message_expiries (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    expires_at      REAL NOT NULL,
    due_at          REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX message_expiries_due ON message_expiries (due_at, conversation_id, seq);
