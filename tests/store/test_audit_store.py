"""The audit log's table on both stores: kept, paged by user and time, purged when old."""

from __future__ import annotations

from typing import Any, cast

from actors.ids import new_id
from actors.ports import Store
from whispr.audit import AuditKind, AuditRecord, AuditStore
from whispr.audit.retention import DAY_S, Retention
from whispr.store import _audit

T0 = 1_800_000_000.0


def _record(
    at: float, user: str | None = "ada", kind: AuditKind = AuditKind.TOKEN_REFUSED, **details: Any
) -> AuditRecord:
    return AuditRecord(
        id=new_id(),
        at=at,
        kind=kind,
        user_id=user,
        actor="bob" if kind is AuditKind.MEMBERSHIP_CHANGED else None,
        reason="token expired",
        source="websocket",
        node="n1",
        peer="10.0.0.1",
        details=details,
    )


async def test_records_are_kept_as_given_and_read_by_user_and_time_range(store: Store) -> None:
    audit = cast(AuditStore, store)
    kept = [
        _record(T0, "ada", topic="conversation:x", nested={"a": [1, 2]}),
        _record(T0 + 1, "bob"),
        _record(T0 + 2, "ada", AuditKind.MEMBERSHIP_CHANGED, role="member"),
        _record(T0 + 3, None, AuditKind.GRPC_AUTH_FAILED),
        _record(T0 + 10, "ada"),
    ]
    await audit.append_audit(kept)
    await audit.append_audit(kept[:2])  # a retried batch: nothing twice

    ada = await audit.audit_page(since=T0, until=T0 + 10, user_id="ada")
    assert ada == [kept[0], kept[2]]  # until is exclusive; every field as written
    everyone = await audit.audit_page(since=T0, until=T0 + 100)
    assert everyone == kept
    kinds = [AuditKind.MEMBERSHIP_CHANGED, AuditKind.GRPC_AUTH_FAILED]
    assert await audit.audit_page(since=T0, until=T0 + 100, kinds=kinds) == kept[2:4]
    assert await audit.audit_page(since=T0 + 1, until=T0 + 3) == kept[1:3]
    assert await audit.audit_page(since=T0, until=T0 + 100, user_id="carol") == []


async def test_pages_follow_each_other_without_loss_or_repeat_within_one_instant(
    store: Store,
) -> None:
    audit = cast(AuditStore, store)
    # Many records at the same instant: the id breaks the tie, so no page boundary
    # loses or repeats one.
    kept = [_record(T0 + (i // 4), "ada") for i in range(23)]
    await audit.append_audit(kept)
    seen: list[AuditRecord] = []
    after = None
    while True:
        page = await audit.audit_page(since=T0, until=T0 + 100, user_id="ada", after=after, limit=5)
        seen += page
        if len(page) < 5:
            break
        after = (page[-1].at, page[-1].id)
    assert seen == sorted(kept, key=lambda r: (r.at, r.id))


async def test_retention_deletes_records_older_than_the_days_kept_and_nothing_else(
    store: Store,
) -> None:
    audit = cast(AuditStore, store)
    now = T0 + 100 * DAY_S
    old = [_record(now - 31 * DAY_S + i) for i in range(7)]
    recent = [_record(now - 29 * DAY_S), _record(now - 1)]
    await audit.append_audit(old + recent)

    assert await Retention(audit, 0, clock=lambda: now).run_once() == 0  # 0: keep all
    assert len(await audit.audit_page(since=0, until=now)) == 9
    assert await Retention(audit, 30, clock=lambda: now).run_once() == 7
    assert await audit.audit_page(since=0, until=now) == recent
    assert await Retention(audit, 30, clock=lambda: now).run_once() == 0


async def test_a_purge_larger_than_one_batch_deletes_everything_expired(store: Store) -> None:
    audit = cast(AuditStore, store)
    count = _audit.PURGE_BATCH + 3
    await audit.append_audit([_record(T0 - 1 - i * 1e-3) for i in range(count)])
    await audit.append_audit([_record(T0)])
    assert await audit.purge_audit(T0) == count
    assert [r.at for r in await audit.audit_page(since=0, until=T0 + 1)] == [T0]
