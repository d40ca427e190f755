"""Sends the store sequences (``Unsequenced``): next seq under the lock, gap-free, idempotent."""

from __future__ import annotations

import asyncio

from actors.model import Message, Unsequenced
from actors.ports import Store
from tests.store.test_contract import NOW, group, message


def draft(conversation_id: str, client: str, sender: str = "alice", **extra: object) -> Unsequenced:
    return Unsequenced(
        conversation_id=conversation_id,
        id=f"{conversation_id}-{sender}-{client}",
        client_id=client,
        sender_id=sender,
        kind="text",
        content=f"text {client}",
        created_at=NOW,
        **extra,  # type: ignore[arg-type]
    )


async def test_the_store_gives_the_next_seqs_in_batch_order(store: Store) -> None:
    await store.create_conversation(*group("g1"))
    await store.create_conversation(*group("g2"))
    await store.insert_messages([message("g1", 1), message("g1", 2)])
    results = await store.insert_messages(
        [draft("g1", "a"), draft("g2", "b"), draft("g1", "c", reply_to=2), draft("g2", "d")]
    )
    assert [r.status for r in results] == ["inserted"] * 4
    assert [(r.message.conversation_id, r.message.seq) for r in results] == [
        ("g1", 3),
        ("g2", 1),
        ("g1", 4),
        ("g2", 2),
    ]
    assert all(type(r.message) is Message for r in results)
    stored = await store.page_messages("g1", after_seq=0)
    assert [(m.seq, m.client_id) for m in stored] == [(1, "c1"), (2, "c2"), (3, "a"), (4, "c")]
    assert stored[-1] == results[2].message
    assert await store.last_seq("g1") == 4
    assert await store.last_seq("g2") == 2
    conversation = await store.get_conversation("g1")
    assert conversation is not None
    assert conversation.last_message_at == NOW + 2


async def test_a_stored_client_id_is_a_duplicate_and_uses_no_seq(store: Store) -> None:
    await store.create_conversation(*group("g1"))
    first = await store.insert_messages([draft("g1", "a"), draft("g1", "b")])
    again = await store.insert_messages(
        [draft("g1", "b"), draft("g1", "c"), draft("g1", "c"), draft("g1", "a", sender="bob")]
    )
    assert [r.status for r in again] == ["duplicate", "inserted", "duplicate", "inserted"]
    assert again[0].message == first[1].message
    assert again[1].message.seq == 3
    assert again[2].message == again[1].message
    assert again[3].message.seq == 4  # another sender's "a" is another message
    stored = await store.page_messages("g1", after_seq=0)
    assert [m.seq for m in stored] == [1, 2, 3, 4]


async def test_a_duplicate_answers_with_the_stored_original_and_its_reactions(
    store: Store,
) -> None:
    await store.create_conversation(*group("g1"))
    first = await store.insert_messages([draft("g1", "a")])
    await store.add_reaction("g1", first[0].message.seq, "bob", "👍")
    again = await store.insert_messages([draft("g1", "a")])
    assert again[0].status == "duplicate"
    assert again[0].message.seq == first[0].message.seq
    assert again[0].message.reactions == {"👍": ("bob",)}


async def test_a_batch_of_both_kinds_writes_given_seqs_first(store: Store) -> None:
    await store.create_conversation(*group("g1"))
    results = await store.insert_messages([draft("g1", "x"), message("g1", 1), message("g1", 1)])
    assert [r.status for r in results] == ["inserted", "inserted", "duplicate"]
    assert results[0].message.seq == 2
    stored = await store.page_messages("g1", after_seq=0)
    assert [(m.seq, m.client_id) for m in stored] == [(1, "c1"), (2, "x")]


async def test_concurrent_writers_get_one_gap_free_order(store: Store) -> None:
    await store.create_conversation(*group("g1"))

    async def writer(sender: str) -> list[int]:
        seqs = []
        for n in range(0, 30, 3):
            batch = [draft("g1", f"{sender}{n + k}", sender=sender) for k in range(3)]
            results = await store.insert_messages(batch)
            assert [r.status for r in results] == ["inserted"] * 3
            seqs += [r.message.seq for r in results]
        return seqs

    a, b = await asyncio.gather(writer("alice"), writer("bob"))
    assert a == sorted(a)
    assert b == sorted(b)
    assert sorted(a + b) == list(range(1, 61))
    # A retried send (same client ids, racing) never makes a second message.
    retried = await asyncio.gather(
        *(store.insert_messages([draft("g1", "alice0")]) for _ in range(4))
    )
    assert {r[0].status for r in retried} == {"duplicate"}
    assert await store.last_seq("g1") == 60
