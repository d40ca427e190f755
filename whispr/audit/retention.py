"""Old audit records deleted: the retention job behind ``WHISPR_AUDIT_RETENTION_DAYS``.

Every node runs it, at start and then every :data:`INTERVAL_S`; the store deletes in
bounded batches through the ``(at)`` index, so the work is proportional to what expired
and several nodes purging at once only find less to do. Why a job rather than
partitions by time: see ``whispr/store/migrations/postgres/0006_audit_log.sql``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import structlog

from whispr.audit.record import AuditStore

__all__ = ["INTERVAL_S", "Retention"]

log = structlog.get_logger("whispr.audit")

#: How often expired records are deleted.
INTERVAL_S: Final = 3600.0
DAY_S: Final = 86_400.0


class Retention:
    """Deletes the records older than ``days`` days from ``store`` (0: keeps everything)."""

    def __init__(
        self, store: AuditStore, days: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.days = days
        self.clock = clock

    async def run_once(self) -> int:
        """Delete what has expired now; how many records went."""
        if not self.days:
            return 0
        deleted = await self.store.purge_audit(self.clock() - self.days * DAY_S)
        if deleted:
            log.info("audit records expired", records=deleted, retention_days=self.days)
        return deleted

    async def run(self, interval_s: float = INTERVAL_S) -> None:
        """:meth:`run_once` now and every ``interval_s`` until cancelled; a failure (the
        store away) is logged and tried again at the next turn."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("audit retention failed; next try in an interval", error=str(exc))
            await asyncio.sleep(interval_s)
