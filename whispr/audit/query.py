"""``whispr audit``: an operator reads the audit log from the store, by user and time.

Times are ISO 8601 (``2026-03-01``, ``2026-03-01T12:00:00+01:00``; UTC when no zone is
given) or a duration back from now (``90m``, ``24h``, ``7d``). Records are printed one
JSON object per line, oldest first, with ``at`` as ISO 8601 UTC, ready for ``jq``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from whispr.audit.record import AuditCursor, AuditKind, AuditRecord, AuditStore

__all__ = ["PAGE", "pages", "parse_time", "print_records"]

#: Records read per query while paging.
PAGE = 500

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_encoder = msgspec.json.Encoder()


def parse_time(text: str, now: float) -> float:
    """``text`` (see the module's docstring) as seconds since the epoch.

    Raises:
        ValueError: naming what was expected.
    """
    duration = _DURATION.match(text.strip())
    if duration is not None:
        return now - float(duration.group(1)) * _UNIT_S[duration.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"expected an ISO 8601 time or a duration such as 90m, 24h, 7d; got {text!r}"
        raise ValueError(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def pages(
    store: AuditStore,
    *,
    since: float,
    until: float,
    user_id: str | None,
    kinds: Sequence[AuditKind],
    limit: int | None,
) -> AsyncIterator[AuditRecord]:
    """The records asked for, oldest first, page by page, ``limit`` at most (None: all)."""
    after: AuditCursor | None = None
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        page = await store.audit_page(
            since=since, until=until, user_id=user_id, kinds=kinds, after=after, limit=size
        )
        for record in page:
            yield record
        if len(page) < size:
            return
        after = (page[-1].at, page[-1].id)
        if left is not None:
            left -= len(page)


def _line(record: AuditRecord) -> bytes:
    fields: dict[str, Any] = msgspec.to_builtins(record)
    fields["at"] = datetime.fromtimestamp(record.at, UTC).isoformat()
    return _encoder.encode(fields)


async def print_records(records: AsyncIterator[AuditRecord], out: TextIO | None = None) -> int:
    """Print ``records`` to ``out`` (stdout), one JSON object per line; how many there were."""
    out = sys.stdout if out is None else out
    count = 0
    async for record in records:
        out.write(_line(record).decode() + "\n")
        count += 1
    return count
