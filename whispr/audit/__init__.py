"""The audit log: security events as records, written by one place, queryable by user and
time. See :mod:`whispr.audit.log` (recording), :mod:`whispr.audit.record` (what a record
is), :mod:`whispr.audit.retention` (old records deleted) and docs/operations.md."""

from __future__ import annotations

from whispr.audit.log import AuditLog
from whispr.audit.record import AuditCursor, AuditKind, AuditRecord, AuditStore

__all__ = ["AuditCursor", "AuditKind", "AuditLog", "AuditRecord", "AuditStore"]
