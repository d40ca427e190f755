-- The server API's token revocations (whispr/revocations.py) and the presence privacy
-- setting (whispr/user_presence.py). Numbered 0009: 0007 and 0008 belong to other changes.
CREATE TABLE token_revocations (
    id            text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('user', 'device', 'jti')),
    user_id       text,
    device_id     text,
    jti           text,
    issued_before double precision NOT NULL,
    at            double precision NOT NULL,
    expires_at    double precision NOT NULL,
    reason        text NOT NULL,
    CHECK (kind <> 'user' OR user_id IS NOT NULL),
    CHECK (kind <> 'device' OR (user_id IS NOT NULL AND device_id IS NOT NULL)),
    CHECK (kind <> 'jti' OR jti IS NOT NULL)
);
-- Each node reads the revocations made since its last read.
CREATE INDEX token_revocations_by_time ON token_revocations (at);

CREATE TABLE presence_privacy (
    user_id        text PRIMARY KEY,
    hide_last_seen boolean NOT NULL
);
