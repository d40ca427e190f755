-- Audit records of suspicious activity (whispr/gateway/abuse.py): the kind joins the
-- list the table accepts.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_kind_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_kind_check CHECK (kind IN ('token_refused',
    'permission_denied', 'rate_limited', 'membership_changed', 'grpc_auth_failed',
    'suspicious_activity'));
