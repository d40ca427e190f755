-- End-to-end encryption (actors/e2e/): registered devices with their public keys, the
-- envelopes waiting for each device, and the blind-index tokens of encrypted messages.
-- The SQLite edition is migration 0009.
CREATE TABLE e2e_devices (
    user_id         text NOT NULL,
    device_id       text NOT NULL,
    registration_id integer NOT NULL CHECK (registration_id > 0),
    name            text NOT NULL,
    created_at      double precision NOT NULL,
    identity_key    bytea,
    PRIMARY KEY (user_id, device_id)
);

-- Signed prekeys (kind 'ec') and post-quantum last-resort prekeys (kind 'kem'): the current
-- one has superseded_at NULL, the one before it stays until superseded_at + the grace period.
CREATE TABLE e2e_signed_prekeys (
    user_id       text NOT NULL,
    device_id     text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('ec', 'kem')),
    key_id        bigint NOT NULL,
    public_key    bytea NOT NULL,
    signature     bytea NOT NULL,
    created_at    double precision NOT NULL,
    superseded_at double precision,
    PRIMARY KEY (user_id, device_id, kind, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES e2e_devices ON DELETE CASCADE
);

CREATE TABLE e2e_one_time_prekeys (
    user_id    text NOT NULL,
    device_id  text NOT NULL,
    key_id     bigint NOT NULL,
    public_key bytea NOT NULL,
    PRIMARY KEY (user_id, device_id, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES e2e_devices ON DELETE CASCADE
);

-- One ciphertext per recipient device, keyed by the message's sender and client id (written
-- before the message, so a message is never visible without its envelopes), deleted when the
-- device acknowledges delivery, or at expires_at.
CREATE TABLE e2e_envelopes (
    conversation_id text NOT NULL,
    user_id         text NOT NULL,
    device_id       text NOT NULL,
    sender_id       text NOT NULL,
    client_id       text NOT NULL,
    type            text NOT NULL CHECK (type IN ('prekey', 'message')),
    ciphertext      bytea NOT NULL,
    expires_at      double precision NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device_id, sender_id, client_id),
    FOREIGN KEY (user_id, device_id) REFERENCES e2e_devices ON DELETE CASCADE
);
CREATE INDEX e2e_envelopes_by_expiry ON e2e_envelopes (expires_at);

CREATE TABLE e2e_blind_tokens (
    conversation_id text NOT NULL,
    token           bytea NOT NULL,
    sender_id       text NOT NULL,
    client_id       text NOT NULL,
    PRIMARY KEY (conversation_id, token, sender_id, client_id)
);
