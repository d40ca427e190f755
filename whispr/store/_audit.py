"""The audit log's SQL, written once for both stores (they differ only in placeholders).

A page's query is assembled from the conditions asked for rather than one statement with
``(param IS NULL OR ...)`` for each: PostgreSQL plans a prepared statement once for all
values, and such a plan cannot count on the ``(user_id, at)`` index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from whispr.audit.record import AuditCursor, AuditKind, AuditRecord

__all__ = ["COLUMNS", "PURGE_BATCH", "page_query", "params", "record"]

#: The table's columns, in the order :func:`params` gives them.
COLUMNS = ("id", "at", "kind", "user_id", "actor", "reason", "source", "node", "peer", "details")
#: Rows one purge statement deletes: the retention job never holds a long lock.
PURGE_BATCH = 5_000

_encoder = msgspec.json.Encoder()
_details = msgspec.json.Decoder(dict[str, Any])


def params(r: AuditRecord) -> tuple[Any, ...]:
    """``r`` as the values of :data:`COLUMNS` (details as JSON text)."""
    details = _encoder.encode(r.details).decode()
    kind = r.kind.value
    return (r.id, r.at, kind, r.user_id, r.actor, r.reason, r.source, r.node, r.peer, details)


def record(row: Mapping[str, Any]) -> AuditRecord:
    """A row of :data:`COLUMNS` (details as JSON text or already decoded) as a record."""
    details = row["details"]
    return AuditRecord(
        id=row["id"],
        at=row["at"],
        kind=AuditKind(row["kind"]),
        user_id=row["user_id"],
        actor=row["actor"],
        reason=row["reason"],
        source=row["source"],
        node=row["node"],
        peer=row["peer"],
        details=details if isinstance(details, dict) else _details.decode(details),
    )


def page_query(
    select: str,
    placeholder: Callable[[int], str],
    *,
    since: float,
    until: float,
    user_id: str | None,
    kinds: Sequence[AuditKind],
    after: AuditCursor | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The statement and its values for one page (see ``AuditStore.audit_page``).

    ``select`` is ``SELECT <columns> FROM audit_log``; ``placeholder(n)`` writes the n-th
    value's placeholder (``$n`` or ``?``).
    """
    values: list[Any] = []

    def value(v: Any) -> str:
        values.append(v)
        return placeholder(len(values))

    where = [f"at >= {value(since)}", f"at < {value(until)}"]
    if user_id is not None:
        where.append(f"user_id = {value(user_id)}")
    if kinds:
        where.append(f"kind IN ({', '.join(value(k.value) for k in kinds)})")
    if after is not None:
        where.append(f"(at, id) > ({value(after[0])}, {value(after[1])})")
    sql = f"{select} WHERE {' AND '.join(where)} ORDER BY at, id LIMIT {value(limit)}"
    return sql, values
