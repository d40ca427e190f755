-- The server API's token revocations and the presence privacy setting (the PostgreSQL
-- edition is migration 0009). Numbered 0005: 0003 and 0004 belong to other changes.
CREATE TABLE token_revocations (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'device', 'jti')),
    user_id       TEXT,
    device_id     TEXT,
    jti           TEXT,
    issued_before REAL NOT NULL,
    at            REAL NOT NULL,
    expires_at    REAL NOT NULL,
    reason        TEXT NOT NULL,
    CHECK (kind <> 'user' OR user_id IS NOT NULL),
    CHECK (kind <> 'device' OR (user_id IS NOT NULL AND device_id IS NOT NULL)),
    CHECK (kind <> 'jti' OR jti IS NOT NULL)
);
CREATE INDEX token_revocations_by_time ON token_revocations (at);

CREATE TABLE presence_privacy (
    user_id        TEXT PRIMARY KEY,
    hide_last_seen INTEGER NOT NULL
);
