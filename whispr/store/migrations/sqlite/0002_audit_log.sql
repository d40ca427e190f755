-- Security events (whispr/audit/). The PostgreSQL edition, migration 0006, says
-- why the table is kept small by a retention job rather than partitioned.
CREATE TABLE audit_log (
    id      TEXT PRIMARY KEY,
    at      REAL NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('token_refused', 'permission_denied',
                'rate_limited', 'membership_changed', 'grpc_auth_failed')),
    user_id TEXT,
    actor   TEXT,
    reason  TEXT NOT NULL,
    source  TEXT NOT NULL,
    node    TEXT NOT NULL,
    peer    TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
