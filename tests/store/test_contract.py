"""The Store contract, on PostgreSQL and on SQLite alike (real databases, no mocks)."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.errors import Reason, WhisprError
from actors.model import Attachment, Conversation, Member, Message, Unsequenced
from actors.ports import Store
from whispr.store.postgres import PostgresStore

NOW = 1_700_000_000.0


def group(conversation_id: str = "g1", *users: str) -> tuple[Conversation, list[Member]]:
    conversation = Conversation(
        id=conversation_id,
        kind="group",
        title="Team",
        created_by="alice",
        created_at=NOW,
        settings={"who_can_post": "all"},
    )
    people = users or ("alice", "bob", "carol")
    members = [
        Member(
            conversation_id=conversation_id,
            user_id=u,
            role="owner" if i == 0 else "member",
            joined_at=NOW + i,
        )
        for i, u in enumerate(people)
    ]
    return conversation, members


def message(
    conversation_id: str,
    seq: int,
    sender: str = "alice",
    client: str | None = None,
    content: str | None = None,
) -> Message:
    return Message(
        conversation_id=conversation_id,
        seq=seq,
        id=f"{conversation_id}-{seq}-{client}",
        client_id=client or f"c{seq}",
        sender_id=sender,
        kind="text",
        content=content if content is not None else f"hello {seq}",
        created_at=NOW + seq,
    )


async def make_group(store: Store, conversation_id: str = "g1") -> None:
    conversation, members = group(conversation_id)
    await store.create_conversation(conversation, members)


async def migrated_with_group(url: str) -> None:
    """Migrate the PostgreSQL schema at ``url`` and create the group ``g1`` in it, for tests
    that go on in SQL of their own."""
    store = PostgresStore(url)
    await store.open()
    try:
        await store.migrate()
        await make_group(store)
    finally:
        await store.close()


async def test_migrate_twice_is_a_no_op(store: Store) -> None:
    await store.migrate()
    await make_group(store)
    await store.migrate()
    assert await store.get_conversation("g1") is not None
    assert await store.ping()


async def test_groups_members_and_roles(store: Store) -> None:
    await make_group(store)
    conversation = await store.get_conversation("g1")
    assert conversation is not None
    assert conversation.title == "Team"
    members = await store.list_members("g1")
    assert [(m.user_id, m.role) for m in members] == [
        ("alice", "owner"),
        ("bob", "member"),
        ("carol", "member"),
    ]
    await store.add_members(
        [Member(conversation_id="g1", user_id="dave", role="member", joined_at=NOW + 10)]
    )
    await store.add_members(
        [Member(conversation_id="g1", user_id="bob", role="admin", joined_at=NOW + 11)]
    )  # already a member: unchanged
    updated = await store.update_member("g1", "carol", role="admin", notifications="mentions")
    assert (updated.role, updated.notifications) == ("admin", "mentions")
    await store.remove_member("g1", "dave")
    roles = {m.user_id: m.role for m in await store.list_members("g1")}
    assert roles == {"alice": "owner", "bob": "member", "carol": "admin"}
    renamed = await store.update_conversation("g1", title="Renamed")
    assert (renamed.title, renamed.settings) == ("Renamed", {"who_can_post": "all"})


async def test_unknown_things_are_not_found(store: Store) -> None:
    assert await store.get_conversation("nope") is None
    assert await store.get_message("nope", 1) is None
    for call in (
        store.update_conversation("nope", title="x"),
        store.remove_member("nope", "alice"),
        store.update_member("nope", "alice", role="admin"),
        store.edit_message("nope", 1, "x", NOW),
        store.delete_message("nope", 1),
        store.add_reaction("nope", 1, "alice", "👍"),
        store.mark_read("nope", "alice", 3),
    ):
        with pytest.raises(WhisprError) as caught:
            await call
        assert caught.value.reason is Reason.NOT_FOUND


async def test_one_direct_conversation_per_pair_even_under_races(store: Store) -> None:
    results = await asyncio.gather(
        *(
            store.get_or_create_direct(*(("ann", "ben") if i % 2 else ("ben", "ann")), NOW)
            for i in range(20)
        )
    )
    assert len({c.id for c in results}) == 1
    assert results[0].kind == "direct"
    assert {m.user_id for m in await store.list_members(results[0].id)} == {"ann", "ben"}
    other = await store.get_or_create_direct("ann", "cat", NOW)
    assert other.id != results[0].id


async def test_group_commit_across_conversations(store: Store) -> None:
    await make_group(store, "g1")
    await make_group(store, "g2")
    batch = [message("g1", 1), message("g2", 1), message("g1", 2), message("g2", 2, "bob")]
    results = await store.insert_messages(batch)
    assert [r.status for r in results] == ["inserted"] * 4
    assert await store.last_seq("g1") == 2
    conversation = await store.get_conversation("g2")
    assert conversation is not None
    assert conversation.last_seq == 2
    assert conversation.last_message_at == NOW + 2


async def test_last_seqs_reads_many_conversations_at_once(store: Store) -> None:
    await make_group(store, "g1")
    await make_group(store, "g2")
    await make_group(store, "g3")
    await store.insert_messages([message("g1", 1), message("g1", 2), message("g2", 1)])
    # Unknown ids are left out; more ids than one SQL list holds are read in chunks.
    many = ["g1", "g2", "g3", *(f"unknown-{n}" for n in range(1200)), "g1"]
    assert await store.last_seqs(many) == {"g1": 2, "g2": 1, "g3": 0}
    assert await store.last_seqs([]) == {}


async def test_memberships_reads_many_pairs_at_once(store: Store) -> None:
    await make_group(store, "g1")
    await make_group(store, "g2")
    await store.remove_member("g2", "bob")
    pairs = [("g1", "bob"), ("g2", "bob"), ("g2", "carol"), ("nope", "bob"), ("g1", "zed")]
    pairs += [("g1", f"stranger-{n}") for n in range(1200)]  # more than one SQL list holds
    assert await store.memberships(pairs) == {("g1", "bob"), ("g2", "carol")}
    assert await store.memberships([]) == set()


def unsequenced(sender: str, client: str, *, trusted: bool = False) -> Unsequenced:
    return Unsequenced(
        conversation_id="g1",
        id=f"id-{client}",
        client_id=client,
        sender_id=sender,
        kind="text",
        content="hi",
        created_at=NOW,
        trusted_sender=trusted,
    )


async def test_a_send_is_written_only_if_its_sender_is_a_member_then(store: Store) -> None:
    await make_group(store)
    await store.remove_member("g1", "carol")
    batch = [
        unsequenced("alice", "a1"),
        unsequenced("carol", "c1"),  # removed: whatever a node's cache still says
        unsequenced("mallory", "m1"),  # never a member
        unsequenced("system", "s1", trusted=True),  # the system and services are not members
        unsequenced("bob", "b1"),
    ]
    results = await store.insert_messages(batch)
    assert [r.status for r in results] == [
        "inserted",
        "not_member",
        "not_member",
        "inserted",
        "inserted",
    ]
    assert [r.message.seq for r in results if r.status == "inserted"] == [1, 2, 3]  # no gap
    assert await store.find_by_client_id("g1", "carol", "c1") is None
    assert await store.last_seq("g1") == 3


async def test_a_retried_client_id_returns_the_original(store: Store) -> None:
    await make_group(store)
    original = message("g1", 1, client="client-1", content="first try")
    await store.insert_messages([original])
    retry = message("g1", 2, client="client-1", content="second try")
    (result,) = await store.insert_messages([retry])
    assert result.status == "duplicate"
    assert (result.message.seq, result.message.content) == (1, "first try")
    assert await store.last_seq("g1") == 1


async def test_a_taken_seq_is_a_conflict_and_writes_nothing(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1, "alice", "a1")])
    conflict, fine = await store.insert_messages(
        [message("g1", 1, "bob", "b1"), message("g1", 2, "bob", "b2")]
    )
    assert conflict.status == "seq_conflict"
    assert fine.status == "inserted"
    stored = await store.get_message("g1", 1)
    assert stored is not None
    assert stored.sender_id == "alice"
    assert await store.last_seq("g1") == 2


async def test_paging_before_and_after(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", n) for n in range(1, 31)])
    newest = await store.page_messages("g1", limit=10)
    assert [m.seq for m in newest] == list(range(21, 31))
    older = await store.page_messages("g1", before_seq=21, limit=10)
    assert [m.seq for m in older] == list(range(11, 21))
    catch_up = await store.page_messages("g1", after_seq=25, limit=100)
    assert [m.seq for m in catch_up] == [26, 27, 28, 29, 30]
    window = await store.page_messages("g1", after_seq=5, before_seq=9)
    assert [m.seq for m in window] == [6, 7, 8]
    assert len(await store.page_messages("g1", after_seq=0, limit=10_000)) == 30


async def test_catch_up_pages_read_together_are_each_the_page_read_alone(store: Store) -> None:
    for cid in ("g1", "g2", "g3"):
        await make_group(store, cid)
        await store.insert_messages([message(cid, n, content=f"{cid} {n}") for n in range(1, 9)])
    await store.hide_message("g1", 3, "carol")
    await store.add_reaction("g2", 5, "bob", "👍")
    await store.add_reaction("g2", 5, "carol", "👍")
    await store.add_reaction("g3", 7, "alice", "🎉")
    asks = [
        (cid, after, limit, viewer)
        for cid in ("g1", "g2", "g3", "nope")
        for after in (0, 2, 6, 8)
        for limit in (1, 3, 100)
        for viewer in (None, "carol")
    ]

    def page(ask: tuple[str, int, int, str | None]) -> object:
        cid, after, limit, viewer = ask
        return store.page_messages(cid, after_seq=after, limit=limit, viewer_id=viewer)

    alone = [await page(ask) for ask in asks]
    batches = store._pages_after.batches if isinstance(store, PostgresStore) else 0
    together = await asyncio.gather(*(page(ask) for ask in asks))  # type: ignore[arg-type]
    assert together == alone
    assert [m.seq for m in alone[asks.index(("g1", 2, 100, "carol"))]] == [4, 5, 6, 7, 8]
    assert [m.seq for m in alone[asks.index(("g1", 2, 3, None))]] == [3, 4, 5]
    g2 = alone[asks.index(("g2", 2, 100, None))]
    assert [m.reactions for m in g2 if m.reactions] == [{"👍": ("bob", "carol")}]
    assert [m.content for m in alone[asks.index(("g3", 6, 100, None))]] == ["g3 7", "g3 8"]
    assert alone[asks.index(("nope", 0, 100, None))] == []
    if isinstance(store, PostgresStore):  # read together: a few statements, not one per page
        assert store._pages_after.batches - batches <= 2


async def test_edit_delete_hide(store: Store) -> None:
    await make_group(store)
    with_file = Message(
        conversation_id="g1",
        seq=2,
        id="m2",
        client_id="c2",
        sender_id="bob",
        kind="media",
        content="look",
        attachments=(Attachment(id="f1", mime_type="image/png", size=10, name="a.png"),),
        created_at=NOW,
    )
    await store.insert_messages([message("g1", 1), with_file, message("g1", 3)])
    edited = await store.edit_message("g1", 1, "changed", NOW + 100)
    assert (edited.content, edited.edited_at) == ("changed", NOW + 100)
    fetched = await store.get_message("g1", 2)
    assert fetched is not None
    assert fetched.attachments[0].name == "a.png"
    deleted = await store.delete_message("g1", 2)
    assert (deleted.deleted, deleted.content, deleted.attachments) == (True, "", ())
    await store.hide_message("g1", 3, "carol")
    await store.hide_message("g1", 3, "carol")
    assert [m.seq for m in await store.page_messages("g1", viewer_id="carol")] == [1, 2]
    assert [m.seq for m in await store.page_messages("g1", viewer_id="bob")] == [1, 2, 3]


async def test_reactions_are_one_per_user_per_emoji(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1)])
    await store.add_reaction("g1", 1, "bob", "👍")
    await store.add_reaction("g1", 1, "bob", "👍")
    await store.add_reaction("g1", 1, "carol", "👍")
    reacted = await store.add_reaction("g1", 1, "bob", "🎉")
    assert reacted.reactions == {"👍": ("bob", "carol"), "🎉": ("bob",)}
    removed = await store.remove_reaction("g1", 1, "bob", "👍")
    assert removed.reactions == {"👍": ("carol",), "🎉": ("bob",)}
    page = await store.page_messages("g1")
    assert page[0].reactions == removed.reactions


async def test_pins(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", n) for n in (1, 2, 3)])
    await store.set_pinned("g1", 3, True)
    await store.set_pinned("g1", 1, True)
    await store.set_pinned("g1", 3, False)
    assert [m.seq for m in await store.list_pinned("g1")] == [1]


async def test_cursors_never_move_back_and_unread_counts(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", n, "alice") for n in range(1, 6)])
    await store.insert_messages([message("g1", 6, "bob", "b6")])
    assert await store.mark_read("g1", "bob", 3) == 3
    assert await store.mark_read("g1", "bob", 2) == 3
    assert await store.mark_delivered("g1", "bob", "phone", 5) == 5
    assert await store.mark_delivered("g1", "bob", "phone", 4) == 5
    assert await store.mark_delivered("g1", "bob", "laptop", 1) == 1
    assert (await store.get_read_cursors("g1"))["bob"] == 3
    await store.delete_message("g1", 5)
    # bob: seqs 4 and 5 are after his cursor; 5 is deleted; 6 is his own.
    assert await store.unread_counts("bob") == {"g1": 1}
    assert await store.unread_counts("carol") == {"g1": 5}  # 1-6 but the deleted 5


async def test_user_conversation_list_by_activity(store: Store) -> None:
    await make_group(store, "old")
    await make_group(store, "new")
    await store.insert_messages([message("old", 1)])
    later = Message(
        conversation_id="new",
        seq=1,
        id="n1",
        client_id="n1",
        sender_id="alice",
        kind="text",
        content="latest",
        created_at=NOW + 500,
    )
    await store.insert_messages([later])
    summaries = await store.list_user_conversations("bob", limit=10)
    assert [s.conversation.id for s in summaries] == ["new", "old"]
    assert summaries[0].last_message is not None
    assert summaries[0].last_message.content == "latest"
    assert summaries[0].unread_count == 1
    assert summaries[0].role == "member"
    first = summaries[0].conversation
    paged = await store.list_user_conversations("bob", limit=10, before=first.last_message_at)
    assert [s.conversation.id for s in paged] == ["old"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["x", "y"]),
                st.integers(1, 8),
                st.sampled_from(["alice", "bob"]),
                st.integers(1, 6),
            ),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=5,
    )
)
async def test_batches_with_duplicates_and_conflicts_match_a_model(
    store: Store, batches: list[list[tuple[str, int, str, int]]]
) -> None:
    """Random batches over two conversations behave as if applied one message at a time."""
    run = f"h{time.monotonic_ns()}"
    for suffix in ("x", "y"):
        await make_group(store, run + suffix)
    by_seq: dict[tuple[str, int], tuple[str, str]] = {}
    by_client: dict[tuple[str, str, str], int] = {}
    for batch in batches:
        messages = [
            message(run + conv, seq, sender, f"k{client}") for conv, seq, sender, client in batch
        ]
        results = await store.insert_messages(messages)
        assert len(results) == len(messages)
        for m, result in zip(messages, results, strict=True):
            key = (m.conversation_id, m.sender_id, m.client_id)
            if key in by_client:
                assert result.status == "duplicate"
                assert result.message.seq == by_client[key]
                assert result.message.client_id == m.client_id
            elif (m.conversation_id, m.seq) in by_seq:
                assert result.status == "seq_conflict"
            else:
                assert result.status == "inserted"
                assert result.message == m
                by_seq[(m.conversation_id, m.seq)] = (m.sender_id, m.client_id)
                by_client[key] = m.seq
    for suffix in ("x", "y"):
        conversation_id = run + suffix
        stored = await store.page_messages(conversation_id, after_seq=0, limit=200)
        expected = {seq: v for (c, seq), v in by_seq.items() if c == conversation_id}
        assert {m.seq: (m.sender_id, m.client_id) for m in stored} == expected
        assert await store.last_seq(conversation_id) == max(expected, default=0)
        conversation = await store.get_conversation(conversation_id)
        assert conversation is not None
        assert conversation.last_seq == max(expected, default=0)


async def test_a_dead_database_is_unavailable_not_a_crash() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    began = time.monotonic()
    with pytest.raises(WhisprError) as caught:
        await store.open()
    assert caught.value.reason is Reason.UNAVAILABLE
    assert time.monotonic() - began < 10
    closed = PostgresStore("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(WhisprError) as caught:
        await closed.get_conversation("x")
    assert caught.value.reason is Reason.UNAVAILABLE
