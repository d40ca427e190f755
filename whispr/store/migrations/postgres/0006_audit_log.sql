-- Security events (whispr/audit/): refused tokens, permission denials, rate-limit
-- refusals, membership changes, gRPC authentication failures.
--
-- Not partitioned: old rows go by a retention job (whispr/audit/retention.py deletes
-- rows older than WHISPR_AUDIT_RETENTION_DAYS, in bounded batches, through the (at)
-- index). Security events are rare next to messages, so the table stays small and
-- a DELETE is cheap; partitions by time would need a job creating them ahead of time
-- all the same. If volume ever calls for it, daily range partitions dropped whole
-- are the next step; the indexes below would carry over.
CREATE TABLE audit_log (
    id      text PRIMARY KEY,
    at      double precision NOT NULL,
    kind    text NOT NULL CHECK (kind IN ('token_refused', 'permission_denied',
                'rate_limited', 'membership_changed', 'grpc_auth_failed')),
    user_id text,
    actor   text,
    reason  text NOT NULL,
    source  text NOT NULL,
    node    text NOT NULL,
    peer    text,
    details jsonb NOT NULL DEFAULT '{}'
);
-- One user's events over a time range (the operator's question), and every
-- user's over a range or older than the retention (the purge).
CREATE INDEX audit_log_by_user ON audit_log (user_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
