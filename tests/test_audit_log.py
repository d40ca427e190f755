"""The audit log's recording and background writer, on a real SQLite store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actors.errors import Reason, WhisprError
from whispr.audit import AuditKind, AuditLog
from whispr.audit.log import RATE_LIMITED_EVERY_S
from whispr.store.sqlite import SqliteStore
from whispr.telemetry import metrics_exposition


def dropped_total() -> float:
    """``whispr_audit_dropped_total`` as a scrape shows it (0 before any drop)."""
    for line in metrics_exposition().decode().splitlines():
        if line.startswith("whispr_audit_dropped_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "audit.db"))
    await store.open()
    await store.migrate()
    yield store
    await store.close()


async def _stored(store: SqliteStore, *, expected: int, within_s: float = 10.0) -> int:
    """How many records the store holds, waiting up to ``within_s`` for ``expected``."""
    deadline = time.monotonic() + within_s
    while True:
        count = len(await store.audit_page(since=0, until=time.time() + 60, limit=100_000))
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.02)


def _refusal(audit: AuditLog, user: str) -> None:
    audit.refused(
        WhisprError(Reason.FORBIDDEN, "only the sender may edit a message"),
        source="websocket",
        user_id=user,
        topic="conversation:c1",
        event="edit_message",
    )


async def test_a_full_queue_drops_and_counts_without_blocking_the_caller(
    sqlite: SqliteStore,
) -> None:
    audit = AuditLog(sqlite, "n1", queue_size=5)
    audit.start()
    before = dropped_total()
    # Twelve records in one go, without yielding to the loop: the writer cannot take
    # any meanwhile, so the queue fills at five and each further record is dropped
    # at once instead of waiting for room.
    for i in range(12):
        _refusal(audit, f"u{i}")
    assert audit.queued == 5
    assert dropped_total() - before == 7
    assert await _stored(sqlite, expected=5) == 5
    for i in range(3):  # the writer emptied the queue: room again
        _refusal(audit, f"v{i}")
    assert await _stored(sqlite, expected=8) == 8
    await audit.close()
    assert dropped_total() - before == 7
    stored = await sqlite.audit_page(since=0, until=time.time() + 60, limit=100)
    assert [r.user_id for r in stored] == [f"u{i}" for i in range(5)] + ["v0", "v1", "v2"]
    assert {r.kind for r in stored} == {AuditKind.PERMISSION_DENIED}
    assert stored[0].details == {
        "error": "forbidden",
        "topic": "conversation:c1",
        "event": "edit_message",
    }


async def test_each_record_is_one_structured_log_line_with_event_audit(
    sqlite: SqliteStore,
) -> None:
    audit = AuditLog(sqlite, "n1")
    with capture_logs() as logs:
        _refusal(audit, "ada")
        audit.refused(  # not a security event: neither logged nor stored
            WhisprError(Reason.INVALID, "content is empty"), source="websocket", user_id="ada"
        )
    lines = [line for line in logs if line["event"] == "audit"]
    assert len(lines) == 1
    assert lines[0]["kind"] == "permission_denied"
    assert lines[0]["user_id"] == "ada"
    assert lines[0]["reason"] == "only the sender may edit a message"
    assert lines[0]["details"]["event"] == "edit_message"
    assert audit.queued == 1
    await audit.close()  # never started: what was queued counts as dropped


async def test_a_failed_write_is_retried_until_the_store_is_back(sqlite: SqliteStore) -> None:
    audit = AuditLog(sqlite, "n1")
    audit.start()
    await sqlite.close()  # every write fails with unavailable meanwhile
    _refusal(audit, "ada")
    await asyncio.sleep(0.3)
    await sqlite.open()
    assert await _stored(sqlite, expected=1) == 1
    await audit.close()


async def test_close_stores_what_is_queued_then_refuses_new_records(sqlite: SqliteStore) -> None:
    audit = AuditLog(sqlite, "n1")
    audit.start()
    before = dropped_total()
    for i in range(50):
        _refusal(audit, f"u{i}")
    await audit.close()
    assert await _stored(sqlite, expected=50, within_s=0) == 50
    _refusal(audit, "late")
    assert dropped_total() - before == 1
    assert audit.queued == 0


async def test_rate_limit_refusals_are_recorded_once_per_interval_with_a_count(
    sqlite: SqliteStore,
) -> None:
    now = [1_000.0]
    audit = AuditLog(sqlite, "n1", clock=lambda: now[0])
    limited = WhisprError(Reason.RATE_LIMITED, "at most 3 messages per minute", limit=3)

    def refuse(user: str | None, peer: str = "10.0.0.1") -> None:
        audit.refused(limited, source="websocket", user_id=user, peer=peer)

    with capture_logs() as logs:
        for _ in range(5):  # a flood within one interval: one record
            refuse("ada")
            now[0] += 1.0
        refuse("bob")  # another user has an interval of their own
        refuse(None, peer="10.0.0.2")  # no user: the address is the key
        now[0] = 1_000.0 + RATE_LIMITED_EVERY_S
        refuse("ada")  # the next interval: the four left out are counted
    records = [(line["user_id"], line["details"]["suppressed"]) for line in logs]
    assert records == [("ada", 0), ("bob", 0), (None, 0), ("ada", 4)]
    assert audit.queued == 4
    await audit.close()


async def test_a_batch_the_store_refuses_is_dropped_and_counted_not_retried_forever(
    sqlite: SqliteStore,
) -> None:
    audit = AuditLog(sqlite, "n1", max_batch=1)  # one record per batch
    audit.start()
    before = dropped_total()
    # Details the store cannot encode: refused for good, unlike an outage.
    audit.record(
        AuditKind.TOKEN_REFUSED,
        user_id="ada",
        reason="r",
        source="websocket",
        odd=object(),
    )
    _refusal(audit, "bob")  # queued behind it: stored once the writer goes on
    assert await _stored(sqlite, expected=1) == 1
    assert dropped_total() - before == 1
    await audit.close()
