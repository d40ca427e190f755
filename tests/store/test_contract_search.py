"""The Store contract of full-text search and filtered history, on PostgreSQL and SQLite alike:
who finds what, the filters, ranking order and its cursor, snippets, and the index kept in
step with edits, tombstones, hidden and removed rows."""

from __future__ import annotations

import math

import msgspec
import pytest

from actors.errors import Reason, WhisprError
from actors.model import Attachment, Message
from actors.ports import Store
from actors.search import MessageFilters, SearchPosition, SearchQuery
from tests.store.test_contract import NOW, group, message
from whispr.store.postgres import PostgresStore


def text(conversation_id: str, seq: int, content: str, sender: str = "alice") -> Message:
    return message(conversation_id, seq, sender, content=content)


def media(conversation_id: str, seq: int, content: str) -> Message:
    photo = Attachment(id="m1", mime_type="image/png", size=10, name="cat.png")
    return msgspec.structs.replace(
        text(conversation_id, seq, content), kind="media", attachments=(photo,)
    )


async def found(store: Store, viewer: str, words: str, **given: object) -> list[tuple[str, int]]:
    """Every hit of a search, page by page (pages of 2), as (conversation, seq)."""
    hits: list[tuple[str, int]] = []
    after = None
    while True:
        page = await store.search_messages(
            SearchQuery(viewer_id=viewer, text=words, limit=2, after=after, **given)  # type: ignore[arg-type]
        )
        hits += [(h.message.conversation_id, h.message.seq) for h in page]
        if len(page) < 2:
            return hits
        last = page[-1]
        after = SearchPosition(last.rank, last.message.conversation_id, last.message.seq)


@pytest.fixture
async def two_groups(store: Store) -> Store:
    for conversation_id, users in (("g1", ("alice", "bob", "carol")), ("g2", ("alice", "dave"))):
        conversation, members = group(conversation_id, *users)
        await store.create_conversation(conversation, members)
    await store.insert_messages(
        [
            text("g1", 1, "the blue whale sings"),
            text("g1", 2, "a red fox", sender="bob"),
            text("g1", 3, "blue blue blue sky over the blue sea"),
            media("g1", 4, "blue photo"),
            text("g2", 1, "blue moon tonight"),
            text("g2", 2, "nothing here", sender="dave"),
        ]
    )
    return store


async def test_a_user_finds_words_in_their_conversations_only(two_groups: Store) -> None:
    store = two_groups
    assert sorted(await found(store, "alice", "blue")) == [
        ("g1", 1),
        ("g1", 3),
        ("g1", 4),
        ("g2", 1),
    ]
    assert sorted(await found(store, "bob", "blue")) == [("g1", 1), ("g1", 3), ("g1", 4)]
    assert await found(store, "dave", "blue") == [("g2", 1)]
    assert await found(store, "mallory", "blue") == []
    assert await found(store, "alice", "blue", conversation_id="g2") == [("g2", 1)]
    assert await found(store, "bob", "blue", conversation_id="g2") == []
    # Every word is required; case does not matter; punctuation is no word.
    assert await found(store, "alice", "BLUE whale!") == [("g1", 1)]
    assert await found(store, "alice", "blue fox") == []
    assert await found(store, "alice", "?!") == []


async def test_filters_narrow_a_search(two_groups: Store) -> None:
    store = two_groups
    assert await found(store, "alice", "fox", filters=MessageFilters(sender_id="bob")) == [
        ("g1", 2)
    ]
    assert await found(store, "alice", "fox", filters=MessageFilters(sender_id="alice")) == []
    assert await found(store, "alice", "blue", filters=MessageFilters(kind="media")) == [("g1", 4)]
    assert await found(store, "alice", "blue", has_attachment=True) == [("g1", 4)]
    assert sorted(await found(store, "alice", "blue", has_attachment=False)) == [
        ("g1", 1),
        ("g1", 3),
        ("g2", 1),
    ]
    window = MessageFilters(since=NOW + 1, until=NOW + 3)  # created_at is NOW + seq
    assert sorted(await found(store, "alice", "blue", filters=window)) == [("g1", 1), ("g2", 1)]


async def test_hits_are_ranked_paged_by_cursor_and_highlighted(two_groups: Store) -> None:
    store = two_groups
    hits = await store.search_messages(SearchQuery(viewer_id="alice", text="blue", limit=10))
    ranks = [h.rank for h in hits]
    assert ranks == sorted(ranks, reverse=True)
    assert (hits[0].message.conversation_id, hits[0].message.seq) == ("g1", 3)  # four blues
    # Paging with the cursor gives the same hits in the same order, none twice.
    assert await found(store, "alice", "blue") == [
        (h.message.conversation_id, h.message.seq) for h in hits
    ]
    for hit in hits:
        assert hit.highlights
        for start, end in hit.highlights:
            assert hit.snippet[start:end].lower() == "blue"
        assert hit.message.content.startswith(hit.snippet.split("…")[0].strip()[:3])


async def test_the_index_follows_edits_tombstones_hiding_and_encryption(two_groups: Store) -> None:
    store = two_groups
    await store.edit_message("g1", 1, "the grey whale sings", NOW + 100)
    assert ("g1", 1) not in await found(store, "alice", "blue")
    assert await found(store, "alice", "grey") == [("g1", 1)]
    await store.delete_message("g1", 3)
    assert ("g1", 3) not in await found(store, "alice", "blue")
    await store.hide_message("g2", 1, "alice")
    assert await found(store, "alice", "moon") == []
    assert await found(store, "dave", "moon") == [("g2", 1)]
    secret = msgspec.structs.replace(text("g2", 3, "blue ciphertext"), metadata={"e2e": True})
    await store.insert_messages([secret])
    assert await found(store, "dave", "ciphertext") == []
    await store.remove_member("g1", "bob")
    assert await found(store, "bob", "fox") == []


async def test_history_pages_take_the_same_filters(two_groups: Store) -> None:
    store = two_groups

    async def seqs(**given: object) -> list[int]:
        page = await store.page_messages("g1", **given)  # type: ignore[arg-type]
        return [m.seq for m in page]

    assert await seqs(filters=MessageFilters(sender_id="bob")) == [2]
    assert await seqs(filters=MessageFilters(kind="media")) == [4]
    assert await seqs(filters=MessageFilters(kind="system")) == []
    assert await seqs(filters=MessageFilters(since=NOW + 2, until=NOW + 4)) == [2, 3]
    assert await seqs(filters=MessageFilters(sender_id="alice"), limit=2) == [3, 4]
    assert await seqs(filters=MessageFilters(sender_id="alice"), after_seq=1, limit=1) == [3]
    assert await seqs(filters=MessageFilters(sender_id="alice"), before_seq=3) == [1]
    assert await seqs(filters=MessageFilters()) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"text": ""}, "query"),
        ({"text": "   "}, "query"),
        ({"text": "x" * 257}, "query"),
        ({"text": "a\x00b"}, "query"),
        ({"text": "\ud800"}, "query"),
        ({"viewer_id": ""}, "viewer_id"),
        ({"conversation_id": "x" * 201}, "conversation_id"),
        ({"filters": MessageFilters(sender_id="a\x00")}, "sender_id"),
        ({"filters": MessageFilters(since=math.nan)}, "since"),
        ({"filters": MessageFilters(until=math.inf)}, "until"),
        ({"filters": MessageFilters(since=2**1100)}, "since"),
        ({"limit": 0}, "limit"),
    ],
)
async def test_bad_searches_are_refused_naming_the_field(
    store: Store, given: dict[str, object], field: str
) -> None:
    query = msgspec.structs.replace(SearchQuery(viewer_id="alice", text="blue"), **given)
    with pytest.raises(WhisprError) as refused:
        await store.search_messages(query)
    assert (refused.value.reason, refused.value.details.get("field")) == (Reason.INVALID, field)


async def test_fts_syntax_and_extreme_values_are_words_not_errors(two_groups: Store) -> None:
    store = two_groups
    for words in ('"blue', "blue OR", "NEAR(blue", "blue*", "-blue", "a:b", "'", "é" * 256):
        await found(store, "alice", words)
    huge = SearchPosition(rank=1e308, conversation_id="\uffff" * 10, seq=2**63 - 1)
    page = await store.search_messages(
        SearchQuery(viewer_id="alice", text="blue", after=huge, limit=1000)
    )
    assert len(page) == 4


async def test_a_conversations_language_decides_its_words(store: Store) -> None:
    """Words as written match on both stores; PostgreSQL stems in the conversation's language
    (SQLite indexes every language as ``simple``), and indexes its messages again when the
    language changes."""
    conversation, members = group("g1")
    english = msgspec.structs.replace(conversation, settings={"search_language": "english"})
    await store.create_conversation(english, members)
    french, others = group("g2")
    french = msgspec.structs.replace(french, settings={"search_language": "french"})
    await store.create_conversation(french, others)
    await store.insert_messages(
        [text("g1", 1, "the whales were singing"), text("g2", 1, "elles chantaient")]
    )
    assert await found(store, "alice", "singing whales") == [("g1", 1)]
    assert await found(store, "alice", "chantaient") == [("g2", 1)]
    if not isinstance(store, PostgresStore):
        assert await found(store, "alice", "sing whale") == []
        return
    assert await found(store, "alice", "sing whale") == [("g1", 1)]
    assert await found(store, "alice", "chanter") == [("g2", 1)]
    await store.update_conversation("g1", settings={"search_language": "simple"})
    assert await found(store, "alice", "sing whale") == []
    assert await found(store, "alice", "singing whales") == [("g1", 1)]
