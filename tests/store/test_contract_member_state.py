"""The Store contract of member state, on PostgreSQL and SQLite alike: a member's own view
(archived, pin order) kept and checked, thread pages, and unread mention counts."""

from __future__ import annotations

import msgspec
import pytest

from actors.errors import Reason, WhisprError
from actors.member_settings import MAX_PIN_ORDER, MUTED_FOREVER
from actors.model import Message
from actors.ports import Store
from tests.store.test_contract import group, message


async def test_a_members_view_is_kept_field_by_field_and_checked(store: Store) -> None:
    conversation, members = group("g1")
    await store.create_conversation(conversation, members)
    assert (members[1].archived, members[1].pin_order) == (False, None)
    bob = await store.update_member("g1", "bob", archived=True, pin_order=MAX_PIN_ORDER)
    assert (bob.archived, bob.pin_order, bob.notifications) == (True, MAX_PIN_ORDER, "all")
    bob = await store.update_member("g1", "bob", muted_until=MUTED_FOREVER, pin_order=None)
    assert (bob.archived, bob.pin_order, bob.muted_until) == (True, None, MUTED_FOREVER)
    assert next(m for m in await store.list_members("g1") if m.user_id == "bob") == bob
    for bad in ({"pin_order": -1}, {"pin_order": MAX_PIN_ORDER + 1}, {"archived": "yes"}):
        with pytest.raises(WhisprError) as refused:
            await store.update_member("g1", "bob", **bad)
        assert refused.value.reason == Reason.INVALID
    assert await store.update_member("g1", "bob", role="admin") == msgspec.structs.replace(
        bob, role="admin"
    )


async def test_a_thread_is_the_replies_to_one_message_paged_and_as_the_viewer_sees_it(
    store: Store,
) -> None:
    conversation, members = group("g1")
    await store.create_conversation(conversation, members)
    batch = [message("g1", 1), message("g1", 2)]
    for seq in range(3, 10):
        batch.append(msgspec.structs.replace(message("g1", seq), reply_to=1 if seq % 2 else 2))
    await store.insert_messages(batch)
    assert [m.seq for m in await store.list_thread("g1", 1)] == [3, 5, 7, 9]
    assert [m.seq for m in await store.list_thread("g1", 1, after_seq=3, limit=2)] == [5, 7]
    assert [m.seq for m in await store.list_thread("g1", 2)] == [4, 6, 8]
    await store.hide_message("g1", 5, "bob")
    assert [m.seq for m in await store.list_thread("g1", 1, viewer_id="bob")] == [3, 7, 9]
    assert await store.list_thread("g1", 9) == []


async def test_mention_counts_are_unread_messages_naming_the_user(store: Store) -> None:
    conversation, members = group("g1")
    await store.create_conversation(conversation, members)
    other, others = group("g2", "alice", "bob")
    await store.create_conversation(other, others)

    def mentioning(conversation_id: str, seq: int, *users: str, sender: str = "alice") -> Message:
        return msgspec.structs.replace(
            message(conversation_id, seq, sender), metadata={"mentions": list(users)}
        )

    await store.insert_messages(
        [
            mentioning("g1", 1, "bob", "carol"),
            mentioning("g1", 2, "carol"),
            mentioning("g1", 3, "bob"),
            mentioning("g1", 4, "bob", sender="bob"),  # one's own message: never unread
            message("g1", 5),
            mentioning("g2", 1, "bob"),
        ]
    )
    assert await store.mention_counts("bob") == {"g1": 2, "g2": 1}
    assert await store.mention_counts("carol") == {"g1": 2}
    assert await store.mention_counts("alice") == {}
    await store.delete_message("g1", 3)
    await store.mark_read("g1", "carol", 1)
    assert await store.mention_counts("bob") == {"g1": 1, "g2": 1}
    assert await store.mention_counts("carol") == {"g1": 1}
    await store.mark_read("g2", "bob", 1)
    assert await store.mention_counts("bob") == {"g1": 1}
    listed = {s.conversation.id: s for s in await store.list_user_conversations("bob", 10)}
    assert {c: (s.unread_count, s.mention_count) for c, s in listed.items()} == {
        "g1": (3, 1),  # 1, 2 and 5 unread (3 deleted, 4 his own); 1 mentions him
        "g2": (0, 0),
    }
