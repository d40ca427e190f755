-- Whispr schema, embedded SQLite edition (same contract as PostgreSQL).
CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title           TEXT,
    avatar          TEXT,
    created_by      TEXT NOT NULL,
    created_at      REAL NOT NULL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_message_at REAL,
    settings        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX conversations_activity ON conversations (COALESCE(last_message_at, created_at));

CREATE TABLE direct_pairs (
    user_low        TEXT NOT NULL,
    user_high       TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    PRIMARY KEY (user_low, user_high)
);

CREATE TABLE members (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    user_id         TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at       REAL NOT NULL,
    muted_until     REAL,
    notifications   TEXT NOT NULL DEFAULT 'all'
        CHECK (notifications IN ('all', 'mentions', 'none')),
    read_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE messages (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    id              TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    content         TEXT NOT NULL,
    attachments     TEXT NOT NULL DEFAULT '[]',
    reply_to        INTEGER,
    created_at      REAL NOT NULL,
    edited_at       REAL,
    deleted         INTEGER NOT NULL DEFAULT 0,
    pinned          INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_id)
);

CREATE TABLE reactions (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    emoji           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    created_at      REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq, emoji, user_id)
);

CREATE TABLE hidden_messages (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    user_id         TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id, seq)
);

CREATE TABLE delivered_cursors (
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device_id)
);
