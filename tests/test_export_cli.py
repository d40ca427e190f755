"""``whispr export``: an operator's export of history as JSON Lines, to a file or stdout, with
a progress bar, as a user sees it or a conversation whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

from tests.store.test_contract import group, message
from whispr import cli
from whispr.store.sqlite import SqliteStore


async def _fill(path: Path) -> None:
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.migrate()
        for conversation_id in ("g1", "g2"):
            conversation, members = group(conversation_id)
            await store.create_conversation(conversation, members)
        await store.insert_messages([message("g1", seq) for seq in range(1, 451)])
        await store.insert_messages([message("g2", 1)])
        await store.add_reaction("g1", 1, "bob", "👍")
        await store.edit_message("g1", 2, "changed", 2e9)
        await store.hide_message("g1", 3, "bob")
        eve, members = group("g3", "eve")
        await store.create_conversation(eve, members)
        await store.insert_messages([msgspec.structs.replace(message("g3", 1), sender_id="eve")])
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "node.db"
    asyncio.run(_fill(path))
    monkeypatch.setenv("WHISPR_SQLITE_PATH", str(path))
    monkeypatch.delenv("WHISPR_DATABASE_URL", raising=False)
    return path


def test_export_of_a_users_conversations_to_a_file_with_progress(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bob.jsonl"
    assert cli.main(["export", "--user", "bob", "--output", str(out), "--progress"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    keys = [(m["conversation_id"], m["seq"]) for m in lines]
    assert keys == [("g1", s) for s in range(1, 451) if s != 3] + [("g2", 1)]
    assert lines[0]["reactions"] == {"👍": ["bob"]}
    assert (lines[1]["content"], lines[1]["edited_at"]) == ("changed", 2e9)
    err = capsys.readouterr().err
    assert "451" in err  # the bar's total
    assert "whispr export: 450 messages" in err


def test_export_of_one_conversation_whole_to_stdout(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["export", "--conversation", "g1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    seqs = [json.loads(line)["seq"] for line in captured.out.splitlines()]
    assert seqs == list(range(1, 451))  # hidden by bob, not by the operator
    assert "whispr export: 450 messages" in captured.err


def test_export_refusals_are_one_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export"]) == 2
    assert cli.main(["export", "--user", "bob", "--conversation", "g3"]) == 1
    assert "not a member" in capsys.readouterr().err
    assert cli.main(["export", "--conversation", "nope"]) == 1
    assert "no conversation" in capsys.readouterr().err
    assert cli.main(["export", "--user", "bob", "--output", "/nonexistent/dir/x"]) == 1
    assert "cannot write" in capsys.readouterr().err
