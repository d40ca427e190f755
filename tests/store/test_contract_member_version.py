"""The membership version, and end-to-end sends judged by it where they are written.

Every member added or removed moves the conversation's version in the same transaction; an
``Unsequenced`` message carrying the version its envelopes were checked against is written
only if that is still the version then, else ``members_changed`` (nothing written, no seq
used), alone in its batch. Plain sends carry none and are not asked.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.errors import Reason, WhisprError
from actors.model import Member, Unsequenced
from actors.ports import Store
from tests.store.test_contract import NOW, make_group


def send(
    conversation_id: str, client: str, sender: str = "alice", version: int | None = None
) -> Unsequenced:
    return Unsequenced(
        conversation_id=conversation_id,
        id=f"{conversation_id}-{sender}-{client}",
        client_id=client,
        sender_id=sender,
        kind="text",
        metadata={"e2e": True},
        created_at=NOW,
        member_version=version,
    )


def member(conversation_id: str, user_id: str) -> Member:
    return Member(conversation_id=conversation_id, user_id=user_id, role="member", joined_at=NOW)


async def test_every_change_of_members_moves_the_version_and_nothing_else_does(
    store: Store,
) -> None:
    await make_group(store, "g1")
    await make_group(store, "g2")
    members, created = await store.versioned_members("g1")
    assert [m.user_id for m in members] == [m.user_id for m in await store.list_members("g1")]
    await store.add_members([member("g1", "dave")])
    members, added = await store.versioned_members("g1")
    assert added > created
    assert "dave" in {m.user_id for m in members}
    await store.add_members([member("g1", "dave")])  # already a member: nothing changes
    await store.update_member("g1", "dave", role="admin")  # the set is the same
    await store.update_member("g1", "dave", archived=True)
    assert (await store.versioned_members("g1"))[1] == added
    await store.remove_member("g1", "dave")
    members, removed = await store.versioned_members("g1")
    assert removed > added
    assert "dave" not in {m.user_id for m in members}
    with pytest.raises(WhisprError):
        await store.remove_member("g1", "dave")  # not a member: nothing changes
    assert (await store.versioned_members("g1"))[1] == removed
    # Another conversation's version is its own.
    assert (await store.versioned_members("g2"))[1] == created


async def test_an_unknown_conversation_has_no_version(store: Store) -> None:
    with pytest.raises(WhisprError) as refused:
        await store.versioned_members("nowhere")
    assert refused.value.reason is Reason.NOT_FOUND


async def test_a_send_checked_against_members_since_changed_is_refused_alone(
    store: Store,
) -> None:
    await make_group(store, "g1")
    _, checked = await store.versioned_members("g1")
    await store.add_members([member("g1", "dave")])  # e.g. through another node's actor
    _, now = await store.versioned_members("g1")
    results = await store.insert_messages(
        [
            send("g1", "plain"),  # no version: not asked
            send("g1", "stale", version=checked),
            send("g1", "current", version=now),
            send("g1", "gone", sender="mallory", version=checked),  # not a member comes first
            send("g1", "stale", sender="bob", version=now + 1),  # a version not reached yet
        ]
    )
    assert [r.status for r in results] == [
        "inserted",
        "members_changed",
        "inserted",
        "not_member",
        "members_changed",
    ]
    assert [r.message.seq for r in results if r.status == "inserted"] == [1, 2]  # no gap
    assert await store.find_by_client_id("g1", "alice", "stale") is None
    assert await store.last_seq("g1") == 2
    # Sent again against the members as they are now, it is written after the others.
    again = await store.insert_messages([send("g1", "stale", version=now)])
    assert again[0].status == "inserted"
    assert again[0].message.seq == 3


async def test_a_stored_client_id_is_a_duplicate_whatever_its_version(store: Store) -> None:
    await make_group(store, "g1")
    _, version = await store.versioned_members("g1")
    first = await store.insert_messages([send("g1", "m1", version=version)])
    await store.add_members([member("g1", "dave")])
    retried = await store.insert_messages([send("g1", "m1", version=version)])
    assert retried[0].status == "duplicate"
    assert retried[0].message == first[0].message


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(["dave", "erin", "bob"])),
        st.tuples(st.just("remove"), st.sampled_from(["dave", "erin", "carol"])),
        st.tuples(st.just("send"), st.sampled_from(["alice", "dave", "erin"]), st.booleans()),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
async def test_sends_and_member_changes_match_a_model(
    store: Store, ops: list[tuple[object, ...]]
) -> None:
    """Random changes of members and sends (each against the version now or an earlier
    one), the sends in batches between changes: the version moves exactly when the set
    does, and a send is written exactly when its sender is a member and its version the
    conversation's, gap-free."""
    conversation_id = f"v{time.monotonic_ns()}"
    await make_group(store, conversation_id)
    members, version = await store.versioned_members(conversation_id)
    model = {m.user_id for m in members}
    seen = [version]
    last_seq = 0
    batch: list[tuple[Unsequenced, str]] = []

    async def flush() -> None:
        nonlocal last_seq
        if not batch:
            return
        results = await store.insert_messages([m for m, _ in batch])
        for (sent, expected), result in zip(batch, results, strict=True):
            assert result.status == expected, (sent, result)
            if expected == "inserted":
                last_seq += 1
                assert result.message.seq == last_seq
        batch.clear()

    for n, op in enumerate(ops):
        if op[0] == "send":
            sender, current = str(op[1]), bool(op[2])
            older = [v for v in seen if v != version]
            checked = version if current or not older else older[-1]
            expected = (
                "not_member"
                if sender not in model
                else "inserted"
                if checked == version
                else "members_changed"
            )
            batch.append((send(conversation_id, f"m{n}", sender, checked), expected))
            continue
        await flush()
        user = str(op[1])
        before = set(model)
        if op[0] == "add":
            await store.add_members([member(conversation_id, user)])
            model.add(user)
        elif user in model:
            await store.remove_member(conversation_id, user)
            model.discard(user)
        members, now = await store.versioned_members(conversation_id)
        assert {m.user_id for m in members} == model
        assert (now > version) if model != before else (now == version)
        version = now
        seen.append(version)
    await flush()
    assert await store.last_seq(conversation_id) == last_seq
