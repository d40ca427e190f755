"""An export reads the store a page at a time, lazily, on both stores: memory holds one page
whatever the export's size, and a reader that stops early costs one page."""

from __future__ import annotations

from typing import Any

import pytest

from actors.errors import Reason, WhisprError
from actors.ports import Store
from actors.rules import MAX_PAGE
from actors.search import CursorCodec
from actors.search_reads import SearchReads
from tests.store.test_contract import group, message


async def test_an_export_reads_one_page_at_a_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for conversation_id in ("g1", "g2"):
        conversation, members = group(conversation_id)
        await store.create_conversation(conversation, members)
    await store.insert_messages([message("g1", seq) for seq in range(1, 2 * MAX_PAGE + 51)])
    await store.insert_messages([message("g2", 1)])
    pages: list[int] = []
    page_messages = store.page_messages

    async def counted(conversation_id: str, **bounds: Any) -> Any:
        page = await page_messages(conversation_id, **bounds)
        pages.append(len(page))
        return page

    monkeypatch.setattr(store, "page_messages", counted)
    reads = SearchReads(store, CursorCodec(b""))
    plan = await reads.plan("bob", None)
    assert plan.conversations == [("g1", 2 * MAX_PAGE + 50), ("g2", 1)]
    pages.clear()  # SQLite's conversation list reads each last message as a page of one

    stream = reads.export("bob", plan)
    first = await anext(stream)
    assert (first.conversation_id, first.seq, pages) == ("g1", 1, [MAX_PAGE])
    rest = [m async for m in stream]
    assert len(rest) + 1 == plan.total
    assert pages == [MAX_PAGE, MAX_PAGE, 50, 1]

    with pytest.raises(WhisprError) as refused:
        await reads.plan("mallory", "g1")
    assert refused.value.reason is Reason.NOT_MEMBER
    with pytest.raises(WhisprError) as refused:
        await reads.plan(None, None)
    assert refused.value.reason is Reason.INVALID
