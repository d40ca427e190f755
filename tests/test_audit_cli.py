"""``whispr audit``: an operator's query of the audit log, by user and time."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.ids import new_id
from whispr import cli
from whispr.audit import AuditKind, AuditRecord
from whispr.audit.query import parse_time
from whispr.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def test_times_are_iso_8601_or_durations_back_from_now() -> None:
    assert parse_time("90m", NOW) == NOW - 5400
    assert parse_time("7d", NOW) == NOW - 7 * 86400
    assert parse_time("2026-03-01T12:00:00", NOW) == NOW  # UTC when no zone is given
    assert parse_time("2026-03-01T13:00:00+01:00", NOW) == NOW
    assert parse_time("2026-03-01", NOW) == NOW - 12 * 3600
    with pytest.raises(ValueError, match="duration such as 90m"):
        parse_time("yesterday", NOW)


def _record(user: str, at: float, kind: AuditKind) -> AuditRecord:
    return AuditRecord(
        id=new_id(),
        at=at,
        kind=kind,
        user_id=user,
        reason="token expired",
        source="websocket",
        node="n1",
    )


async def _fill(path: Path, records: list[AuditRecord]) -> None:
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.migrate()
        await store.append_audit(records)
    finally:
        await store.close()


def test_whispr_audit_prints_one_users_records_in_a_range_as_json_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "node.db"
    token, member = AuditKind.TOKEN_REFUSED, AuditKind.MEMBERSHIP_CHANGED
    hour = 3600.0
    records = [
        _record("ada", NOW - 3 * hour, token),  # before --since
        _record("ada", NOW - 2 * hour, token),
        _record("bob", NOW - 2 * hour, token),  # someone else
        _record("ada", NOW - 1 * hour, member),
        *(_record("ada", NOW - 1 * hour + i, token) for i in range(1, 1200)),  # pages
        _record("ada", NOW + hour, token),  # after --until
    ]
    asyncio.run(_fill(db, records))
    monkeypatch.setenv("WHISPR_SQLITE_PATH", str(db))
    monkeypatch.delenv("WHISPR_DATABASE_URL", raising=False)
    argv = ["audit", "--user", "ada", "--since", "2026-03-01T09:30:00Z"]
    argv += ["--until", "2026-03-01T12:00:00Z"]

    assert cli.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [r.id for r in records[1:2] + records[3:-1]]
    assert lines[0]["at"] == "2026-03-01T10:00:00+00:00"
    assert lines[0]["kind"] == "token_refused"

    assert cli.main([*argv, "--kind", "membership_changed"]) == 0
    only = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in only] == [records[3].id]

    assert cli.main([*argv, "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3

    assert cli.main(["audit", "--since", "last week"]) == 2
    assert "duration such as 90m" in capsys.readouterr().err
