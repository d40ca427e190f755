-- Audit records of suspicious activity (whispr/gateway/abuse.py): the kind joins the
-- list the table accepts. SQLite cannot change a CHECK constraint, so the table is
-- rebuilt with the new one and its rows copied.
CREATE TABLE audit_log_new (
    id      TEXT PRIMARY KEY,
    at      REAL NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('token_refused', 'permission_denied',
                'rate_limited', 'membership_changed', 'grpc_auth_failed',
                'suspicious_activity')),
    user_id TEXT,
    actor   TEXT,
    reason  TEXT NOT NULL,
    source  TEXT NOT NULL,
    node    TEXT NOT NULL,
    peer    TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO audit_log_new SELECT id, at, kind, user_id, actor, reason, source, node, peer, details
    FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_by_user ON audit_log (user_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
