-- Whispr schema, PostgreSQL edition.
CREATE TABLE conversations (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('direct', 'group')),
    title           text,
    avatar          text,
    created_by      text NOT NULL,
    created_at      double precision NOT NULL,
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at double precision,
    settings        jsonb NOT NULL DEFAULT '{}'
);

-- Exactly one direct conversation per unordered pair of users.
CREATE TABLE direct_pairs (
    user_low        text NOT NULL,
    user_high       text NOT NULL,
    conversation_id text NOT NULL REFERENCES conversations (id),
    PRIMARY KEY (user_low, user_high)
);

CREATE TABLE members (
    conversation_id text NOT NULL REFERENCES conversations (id),
    user_id         text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at       double precision NOT NULL,
    muted_until     double precision,
    notifications   text NOT NULL DEFAULT 'all'
        CHECK (notifications IN ('all', 'mentions', 'none')),
    read_seq        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
-- A user's conversation list starts from their memberships.
CREATE INDEX members_by_user ON members (user_id);

-- Messages are partitioned by HASH of the conversation: every hot query
-- (append, catch-up after a seq, history before a seq, unread counts) names
-- one conversation, so it touches one partition; the primary key must hold
-- the partition key anyway. Range partitions by time would split a
-- conversation's history across partitions and need a job creating them.
-- Full-text search, when it comes, adds a generated tsvector column and a
-- GIN index per partition.
CREATE TABLE messages (
    conversation_id text NOT NULL,
    seq             bigint NOT NULL,
    id              text NOT NULL,
    client_id       text NOT NULL,
    sender_id       text NOT NULL,
    kind            text NOT NULL,
    content         text NOT NULL,
    attachments     jsonb NOT NULL DEFAULT '[]',
    reply_to        bigint,
    created_at      double precision NOT NULL,
    edited_at       double precision,
    deleted         boolean NOT NULL DEFAULT false,
    pinned          boolean NOT NULL DEFAULT false,
    metadata        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_id)
) PARTITION BY HASH (conversation_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE messages_p%s PARTITION OF messages FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            i, i);
    END LOOP;
END $$;

CREATE INDEX messages_pinned ON messages (conversation_id, seq) WHERE pinned;

CREATE TABLE reactions (
    conversation_id text NOT NULL,
    seq             bigint NOT NULL,
    emoji           text NOT NULL,
    user_id         text NOT NULL,
    created_at      double precision NOT NULL,
    PRIMARY KEY (conversation_id, seq, emoji, user_id)
);

CREATE TABLE hidden_messages (
    conversation_id text NOT NULL,
    seq             bigint NOT NULL,
    user_id         text NOT NULL,
    PRIMARY KEY (conversation_id, user_id, seq)
);

CREATE TABLE delivered_cursors (
    conversation_id text NOT NULL,
    user_id         text NOT NULL,
    device_id       text NOT NULL,
    seq             bigint NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device_id)
);
