"""The Store contract at its boundary: bad input, tombstones, paging ties, both backends alike.

Every refusal here must change nothing, so each test reads the state back
after the error. The last tests run the two backends side by side on the
same random input and compare what they answer, result by result.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.errors import Reason, WhisprError
from actors.model import Conversation, Member, Message
from actors.ports import Store
from tests.services import PgSchema
from tests.store.test_contract import NOW, make_group, message, migrated_with_group
from whispr.store.postgres import PostgresStore
from whispr.store.sqlite import SqliteStore


async def refused(call: Any, reason: Reason = Reason.INVALID) -> WhisprError:
    """Await ``call`` and return the WhisprError it must raise, with ``reason``."""
    with pytest.raises(WhisprError) as caught:
        await call
    assert caught.value.reason is reason, caught.value
    return caught.value


# -- bad input changes nothing -----------------------------------------------------------


async def test_a_direct_conversation_needs_two_users(store: Store) -> None:
    error = await refused(store.get_or_create_direct("alice", "alice", NOW))
    assert error.details == {"field": "user_b"}
    await refused(store.get_or_create_direct("", "bob", NOW))
    await refused(store.get_or_create_direct("alice", "bob", math.nan))
    assert await store.list_user_conversations("alice", limit=10) == []


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("seq", 0),
        ("seq", -3),
        ("kind", "voice"),
        ("client_id", ""),
        ("client_id", "x\x00"),
        ("content", "nul \x00 inside"),
        ("sender_id", ""),
        ("id", ""),
        ("created_at", math.nan),
        ("created_at", math.inf),
        ("reply_to", 2),
        ("reply_to", 0),
        ("metadata", None),
    ],
)
async def test_a_malformed_message_is_refused_alone_and_the_batch_written(
    store: Store, field: str, bad: Any
) -> None:
    """A group-commit batch holds other users' sends: one malformed message is refused on
    its own (``invalid``, naming the field), never the batch with it."""
    await make_group(store, "g1")
    await make_group(store, "g2")
    good = [message("g1", 1), message("g2", 1)]
    fields = {f: getattr(message("g1", 2), f) for f in Message.__struct_fields__}
    malformed = Message(**{**fields, field: bad})
    results = await store.insert_messages([good[0], malformed, good[1]])
    assert [r.status for r in results] == ["inserted", "invalid", "inserted"]
    assert results[1].field == field
    assert results[1].message == malformed
    assert await store.last_seq("g1") == 1
    assert await store.last_seq("g2") == 1
    assert [m.client_id for m in await store.page_messages("g1", after_seq=0)] == ["c1"]


async def test_a_malformed_conversation_is_not_created(store: Store) -> None:
    conversation = Conversation(id="g9", kind="group", created_by="alice", created_at=NOW)
    owner = Member(conversation_id="g9", user_id="alice", role="owner", joined_at=NOW)
    cases: list[tuple[Conversation, list[Member]]] = [
        (Conversation(id="g9", kind="channel", created_by="alice", created_at=NOW), [owner]),  # type: ignore[arg-type]
        (Conversation(id="", kind="group", created_by="alice", created_at=NOW), [owner]),
        (
            conversation,
            [owner, Member(conversation_id="g8", user_id="bob", role="member", joined_at=NOW)],
        ),
        (conversation, [Member(conversation_id="g9", user_id="bob", role="king", joined_at=NOW)]),  # type: ignore[arg-type]
        (
            conversation,
            [
                Member(
                    conversation_id="g9", user_id="bob", role="member", joined_at=NOW, read_seq=-1
                )
            ],
        ),
    ]
    for bad_conversation, members in cases:
        await refused(store.create_conversation(bad_conversation, members))
    assert await store.get_conversation("g9") is None
    assert await store.list_user_conversations("alice", limit=10) == []


async def test_bad_members_and_settings_are_refused(store: Store) -> None:
    await make_group(store)
    await refused(
        store.add_members([Member(conversation_id="g1", user_id="", role="member", joined_at=NOW)])
    )
    await refused(store.update_member("g1", "bob", notifications="sometimes"))
    await refused(store.update_member("g1", "bob", muted_until=math.inf))
    await refused(store.update_conversation("g1", settings=["not", "an", "object"]))  # type: ignore[arg-type]
    await refused(store.update_conversation("g1", title="a\x00b"))
    await refused(store.update_conversation("g1", avatar=7))  # type: ignore[arg-type]
    member = {m.user_id: m for m in await store.list_members("g1")}["bob"]
    assert (member.notifications, member.muted_until) == ("all", None)
    conversation = await store.get_conversation("g1")
    assert conversation is not None
    assert (conversation.title, conversation.avatar) == ("Team", None)
    assert conversation.settings == {"who_can_post": "all"}


async def test_bad_limits_and_cursors_are_refused(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1), message("g1", 2, "bob")])
    await refused(store.page_messages("g1", limit=0))
    await refused(store.page_messages("g1", before_seq=-1))
    await refused(store.page_messages("g1", after_seq=-1))
    await refused(store.list_user_conversations("bob", limit=0))
    await refused(store.mark_read("g1", "alice", -1))
    await refused(store.mark_delivered("g1", "alice", "phone", -1))
    await refused(store.mark_delivered("g1", "alice", "", 1))
    await refused(store.hide_message("g1", 1, ""))
    await refused(store.add_reaction("g1", 1, "bob", ""))
    await refused(store.edit_message("g1", 1, "x", math.nan))
    await refused(store.edit_message("g1", 1, "nul \x00", NOW))
    assert (await store.get_read_cursors("g1"))["alice"] == 0
    assert await store.get_delivery_cursors("g1") == []
    assert [m.seq for m in await store.page_messages("g1", viewer_id="")] == [1, 2]


# -- tombstones ---------------------------------------------------------------------------


async def test_a_tombstone_cannot_be_edited_reacted_to_or_pinned(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1, "bob", content="secret")])
    await store.add_reaction("g1", 1, "alice", "👍")
    await store.set_pinned("g1", 1, True)
    tombstone = await store.delete_message("g1", 1)
    assert (tombstone.deleted, tombstone.content, tombstone.pinned) == (True, "", False)
    assert tombstone.reactions == {}  # they went with the content
    assert tombstone.sender_id == "bob"
    await refused(store.edit_message("g1", 1, "resurrected", NOW + 9))
    await refused(store.add_reaction("g1", 1, "carol", "🎉"))
    await refused(store.set_pinned("g1", 1, True))
    assert await store.set_pinned("g1", 1, False) == tombstone  # unpinning is harmless
    assert await store.remove_reaction("g1", 1, "alice", "👍") == tombstone
    assert await store.delete_message("g1", 1) == tombstone  # deleting again: idempotent
    assert await store.get_message("g1", 1) == tombstone
    assert await store.list_pinned("g1") == []


# -- updates name their fields ----------------------------------------------------------


async def test_an_explicit_none_clears_a_field(store: Store) -> None:
    await make_group(store)
    await store.update_conversation("g1", avatar="media:1")
    cleared = await store.update_conversation("g1", title=None)
    assert (cleared.title, cleared.avatar) == (None, "media:1")
    await store.update_member("g1", "bob", muted_until=NOW + 60, notifications="none")
    unmuted = await store.update_member("g1", "bob", muted_until=None)
    assert (unmuted.muted_until, unmuted.notifications, unmuted.role) == (None, "none", "member")


async def test_concurrent_updates_of_different_fields_keep_both(store: Store) -> None:
    await make_group(store)
    for round_ in range(10):
        await asyncio.gather(
            store.update_conversation("g1", title=f"title {round_}"),
            store.update_conversation("g1", avatar=f"media:{round_}"),
            store.update_member("g1", "bob", role="admin" if round_ % 2 else "member"),
            store.update_member("g1", "bob", notifications="mentions" if round_ % 2 else "all"),
        )
        conversation = await store.get_conversation("g1")
        assert conversation is not None
        assert (conversation.title, conversation.avatar) == (f"title {round_}", f"media:{round_}")
        bob = {m.user_id: m for m in await store.list_members("g1")}["bob"]
        assert (bob.role, bob.notifications) == (
            ("admin", "mentions") if round_ % 2 else ("member", "all")
        )


# -- the conversation list pages through ties ----------------------------------------------


async def test_conversation_list_pages_through_equal_activity(store: Store) -> None:
    ids = [f"tie{n}" for n in range(7)]
    for conversation_id in ids:
        await store.create_conversation(
            Conversation(id=conversation_id, kind="group", created_by="u", created_at=NOW),
            [Member(conversation_id=conversation_id, user_id="u", role="owner", joined_at=NOW)],
        )
    await store.create_conversation(
        Conversation(id="older", kind="group", created_by="u", created_at=NOW - 1),
        [Member(conversation_id="older", user_id="u", role="owner", joined_at=NOW)],
    )
    seen: list[str] = []
    before: float | None = None
    before_id: str | None = None
    for _ in range(10):
        page = await store.list_user_conversations("u", 3, before, before_id=before_id)
        if not page:
            break
        seen += [s.conversation.id for s in page]
        last = page[-1].conversation
        before = last.last_message_at if last.last_message_at is not None else last.created_at
        before_id = last.id
    assert seen == [*sorted(ids, reverse=True), "older"]


# -- delivery cursors ---------------------------------------------------------------------


async def test_delivery_cursors_per_device(store: Store) -> None:
    await make_group(store)
    assert await store.mark_delivered("g1", "bob", "phone", 5) == 5
    assert await store.mark_delivered("g1", "bob", "phone", 3) == 5
    assert await store.mark_delivered("g1", "bob", "laptop", 2) == 2
    assert await store.mark_delivered("g1", "carol", "web", 4) == 4
    every = await store.get_delivery_cursors("g1")
    assert [(c.user_id, c.device_id, c.delivered_seq) for c in every] == [
        ("bob", "laptop", 2),
        ("bob", "phone", 5),
        ("carol", "web", 4),
    ]
    bobs = await store.get_delivery_cursors("g1", "bob")
    assert {c.device_id for c in bobs} == {"laptop", "phone"}
    assert all(c.conversation_id == "g1" for c in every)
    assert await store.get_delivery_cursors("nope") == []


# -- PostgreSQL: the database refuses what the code would ------------------------------------


async def test_postgres_constraints_back_up_the_checks(pg_schema: PgSchema) -> None:
    await migrated_with_group(pg_schema.url)
    connection = await asyncpg.connect(pg_schema.url)
    try:
        insert = (
            "INSERT INTO messages (conversation_id, seq, id, client_id, sender_id, kind, "
            "content, reply_to, created_at) VALUES ($1, $2, 'i', $3, 'a', $4, '', $5, 1)"
        )
        for seq, client, kind, reply_to in [
            (0, "a", "text", None),
            (1, "b", "voice", None),
            (1, "c", "text", 1),
        ]:
            with pytest.raises(asyncpg.CheckViolationError):
                await connection.execute(insert, "g1", seq, client, kind, reply_to)
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute("UPDATE members SET read_seq = -1 WHERE user_id = 'bob'")
        assert await connection.fetchval("SELECT count(*) FROM messages") == 0
        plan = "\n".join(
            r[0]
            for r in await connection.fetch(
                "EXPLAIN SELECT * FROM messages WHERE conversation_id = 'g1' AND seq > 5"
            )
        )
        scanned = set(re.findall(r" on (messages_p\d+)", plan))
        assert len(scanned) == 1, plan  # pruned to the conversation's one partition
    finally:
        await connection.close()


# -- both backends give the same answers --------------------------------------------------


@pytest.fixture
async def both(pg_schema: PgSchema, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """A migrated SQLite store and a migrated PostgreSQL store, side by side."""
    sqlite = SqliteStore(str(tmp_path / "side.db"))
    postgres = PostgresStore(
        pg_schema.base_url, server_settings=pg_schema.server_settings, max_size=3
    )
    await sqlite.open()
    try:
        await postgres.open()
        try:
            await sqlite.migrate()
            await postgres.migrate()
            yield sqlite, postgres
        finally:
            await postgres.close()
    finally:
        await sqlite.close()


_runs = itertools.count()

_batch_item = st.tuples(
    st.sampled_from(["x", "y", "z"]),  # conversation
    st.integers(1, 6),  # seq
    st.sampled_from(["alice", "bob"]),  # sender
    st.integers(1, 5),  # client id
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(_batch_item, min_size=1, max_size=10), min_size=1, max_size=6),
    reads=st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]), st.integers(0, 7))),
)
async def test_both_backends_answer_random_batches_alike(
    both: tuple[Store, Store],
    batches: list[list[tuple[str, int, str, int]]],
    reads: list[tuple[str, int]],
) -> None:
    """Same batches with duplicates and seq conflicts: same results, same stored state."""
    run = f"r{next(_runs)}"
    answers: list[list[Any]] = []
    for store in both:
        for suffix in ("x", "y", "z"):
            await make_group(store, run + suffix)
        seen: list[Any] = []
        for batch in batches:
            results = await store.insert_messages(
                [message(run + c, seq, sender, f"k{client}") for c, seq, sender, client in batch]
            )
            seen.append([(r.status, r.message) for r in results])
        for user, seq in reads:
            seen.append(await store.mark_read(run + "x", user, seq))
        for suffix in ("x", "y", "z"):
            conversation = await store.get_conversation(run + suffix)
            assert conversation is not None
            seen.append((conversation.last_seq, conversation.last_message_at))
            seen.append(await store.page_messages(run + suffix, after_seq=0, limit=200))
        seen.append(await store.unread_counts("carol"))
        seen.append(
            [
                (s.conversation.id, s.unread_count, s.last_message)
                for s in await store.list_user_conversations("carol", 10)
                if s.conversation.id.startswith(run)
            ]
        )
        answers.append(seen)
    sqlite_answers, postgres_answers = answers
    assert sqlite_answers == postgres_answers
