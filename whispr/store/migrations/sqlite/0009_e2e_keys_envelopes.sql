-- End-to-end encryption (actors/e2e/): registered devices with their public keys, the
-- envelopes waiting for each device, and the blind-index tokens of encrypted messages.
-- The PostgreSQL edition is migration 0013.
CREATE TABLE e2e_devices (
    user_id         TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    registration_id INTEGER NOT NULL CHECK (registration_id > 0),
    name            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    identity_key    BLOB,
    PRIMARY KEY (user_id, device_id)
);

-- Signed prekeys (kind 'ec') and post-quantum last-resort prekeys (kind 'kem'): the current
-- one has superseded_at NULL, the one before it stays until superseded_at + the grace period.
CREATE TABLE e2e_signed_prekeys (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('ec', 'kem')),
    key_id        INTEGER NOT NULL,
    public_key    BLOB NOT NULL,
    signature     BLOB NOT NULL,
    created_at    REAL NOT NULL,
    superseded_at REAL,
    PRIMARY KEY (user_id, device_id, kind, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES e2e_devices (user_id, device_id) ON DELETE CASCADE
);

CREATE TABLE e2e_one_time_prekeys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    key_id     INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    PRIMARY KEY (user_id, device_id, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES e2e_devices (user_id, device_id) ON DELETE CASCADE
);

-- One ciphertext per recipient device, keyed by the message's sender and client id (written
-- before the message, so a message is never visible without its envelopes), deleted when the
-- device acknowledges delivery, or at expires_at.
CREATE TABLE e2e_envelopes (
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('prekey', 'message')),
    ciphertext      BLOB NOT NULL,
    expires_at      REAL NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device_id, sender_id, client_id),
    FOREIGN KEY (user_id, device_id) REFERENCES e2e_devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX e2e_envelopes_by_expiry ON e2e_envelopes (expires_at);

CREATE TABLE e2e_blind_tokens (
    conversation_id TEXT NOT NULL,
    token           BLOB NOT NULL,
    sender_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    PRIMARY KEY (conversation_id, token, sender_id, client_id)
);
