"""The Store contract for scheduled messages and expiries (both stores, one suite)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from actors.errors import Reason, WhisprError
from actors.model import Draft, Message, Unsequenced
from actors.ports import ScheduleStore, Store
from actors.scheduling import Schedule
from tests.store.test_contract import NOW, make_group, message


def schedules(store: Store) -> ScheduleStore:
    return cast(ScheduleStore, store)


def schedule(
    schedule_id: str, send_at: float, *, client_id: str | None = None, sender: str = "bob"
) -> Schedule:
    return Schedule(
        id=schedule_id,
        conversation_id="g1",
        sender_id=sender,
        draft=Draft(client_id=client_id or f"c-{schedule_id}", content=f"later {schedule_id}"),
        send_at=send_at,
        created_at=NOW,
    )


def disappearing(seq: int, expires_at: float, sender: str = "alice") -> Message:
    plain = message("g1", seq, sender)
    return Message(
        **{
            **{f: getattr(plain, f) for f in plain.__struct_fields__},
            "metadata": {"expires_at": expires_at},
        }
    )


async def test_a_schedule_round_trips_and_is_idempotent_by_client_id(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    kept = await s.add_schedule(schedule("s1", NOW + 60))
    assert kept == schedule("s1", NOW + 60)
    again = await s.add_schedule(schedule("s1-retry", NOW + 90, client_id="c-s1"))
    assert again.id == "s1"  # the stored one, not a second schedule
    assert await s.get_schedule("s1") == kept
    assert await s.get_schedule("nope") is None
    assert [x.id for x in await s.list_schedules("g1", "bob")] == ["s1"]
    assert await s.list_schedules("g1", "alice") == []


async def test_listing_is_by_send_at(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    for sid, at in (("a", NOW + 30), ("b", NOW + 10), ("c", NOW + 20)):
        await s.add_schedule(schedule(sid, at))
    assert [x.id for x in await s.list_schedules("g1", "bob")] == ["b", "c", "a"]


async def test_update_and_cancel_before_a_claim(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    await s.add_schedule(schedule("s1", NOW + 60))
    changed = await s.update_schedule(
        "s1", draft=Draft(client_id="c-s1", content="changed"), send_at=NOW + 5
    )
    assert (changed.draft.content, changed.send_at) == ("changed", NOW + 5)
    moved = await s.update_schedule("s1", send_at=NOW + 7)
    assert (moved.draft.content, moved.send_at) == ("changed", NOW + 7)
    assert await s.next_due() == NOW + 7
    await s.cancel_schedule("s1")
    assert await s.get_schedule("s1") is None
    assert await s.next_due() is None
    for call in (s.cancel_schedule("s1"), s.update_schedule("s1", send_at=NOW)):
        with pytest.raises(WhisprError) as refused:
            await call
        assert refused.value.reason is Reason.NOT_FOUND


async def test_a_claimed_schedule_no_longer_changes(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    await s.add_schedule(schedule("s1", NOW))
    [claimed] = await s.claim_schedules(NOW, 30.0, 10)
    assert claimed.attempts == 1
    for call in (s.cancel_schedule("s1"), s.update_schedule("s1", send_at=NOW + 1)):
        with pytest.raises(WhisprError) as refused:
            await call
        assert refused.value.reason is Reason.CONFLICT


async def test_claims_take_due_schedules_in_order_for_a_lease(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    for sid, at in (("late", NOW + 2), ("early", NOW + 1), ("future", NOW + 100)):
        await s.add_schedule(schedule(sid, at))
    assert await s.next_due() == NOW + 1
    claimed = await s.claim_schedules(NOW + 5, 30.0, 10)
    assert [x.id for x in claimed] == ["early", "late"]
    # Claimed: not claimable again until the lease ends; the head is now the future one.
    assert await s.claim_schedules(NOW + 6, 30.0, 10) == []
    assert await s.next_due() == NOW + 35
    # The claimer died: once the lease is over another claim takes them again.
    again = await s.claim_schedules(NOW + 36, 30.0, 10)
    assert [(x.id, x.attempts) for x in again] == [("early", 2), ("late", 2)]
    await s.finish_schedule("early")
    await s.finish_schedule("late")
    assert await s.next_due() == NOW + 100
    assert await s.claim_schedules(NOW + 36, 30.0, 10) == []


async def test_claims_respect_the_limit(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    for n in range(5):
        await s.add_schedule(schedule(f"s{n}", NOW + n))
    first = await s.claim_schedules(NOW + 10, 30.0, 2)
    rest = await s.claim_schedules(NOW + 10, 30.0, 10)
    assert [x.id for x in first] == ["s0", "s1"]
    assert [x.id for x in rest] == ["s2", "s3", "s4"]


async def test_concurrent_claims_never_share_a_schedule(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    for n in range(40):
        await s.add_schedule(schedule(f"s{n:02}", NOW))
    claims = await asyncio.gather(*(s.claim_schedules(NOW, 30.0, 7) for _ in range(8)))
    taken = [x.id for claim in claims for x in claim]
    assert sorted(taken) == [f"s{n:02}" for n in range(40)]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("send_at", {"send_at": float("nan")}),
        ("send_at", {"send_at": float("inf")}),
        ("content", {"draft": Draft(client_id="c", content="a\x00b")}),
        ("content", {"draft": Draft(client_id="c", content="\ud800")}),
        ("client_id", {"draft": Draft(client_id="", content="x")}),
        ("sender_id", {"sender_id": ""}),
        ("id", {"id": "x" * 10_000}),
    ],
)
async def test_malformed_schedules_are_refused_naming_the_field(
    store: Store, field: str, change: dict[str, Any]
) -> None:
    await make_group(store)
    fields = {f: getattr(schedule("s1", NOW), f) for f in Schedule.__struct_fields__}
    with pytest.raises(WhisprError) as refused:
        await schedules(store).add_schedule(Schedule(**{**fields, **change}))
    assert refused.value.reason is Reason.INVALID
    assert refused.value.details.get("field") == field
    assert await schedules(store).next_due() is None


async def test_a_message_with_expires_at_is_due_to_expire(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    await store.insert_messages([message("g1", 1), disappearing(2, NOW + 50)])
    [sent] = await store.insert_messages(
        [
            Unsequenced(
                conversation_id="g1",
                id="u1",
                client_id="cu",
                sender_id="bob",
                kind="text",
                content="bye",
                created_at=NOW,
                metadata={"expires_at": NOW + 40},
            )
        ]
    )
    assert sent.message.seq == 3
    assert await s.next_due() == NOW + 40
    claimed = await s.claim_expiries(NOW + 45, 30.0, 10)
    assert [(e.seq, e.expires_at) for e in claimed] == [(3, NOW + 40)]
    assert await s.next_due() == NOW + 50


async def test_expires_at_must_be_a_finite_number(store: Store) -> None:
    await make_group(store)
    bad = Message(
        **{
            **{f: getattr(message("g1", 1), f) for f in Message.__struct_fields__},
            "metadata": {"expires_at": "soon"},
        }
    )
    [result] = await store.insert_messages([bad])
    assert (result.status, result.field) == ("invalid", "metadata")
    assert await schedules(store).next_due() is None


async def test_an_expired_message_is_gone_from_every_read(store: Store) -> None:
    await make_group(store)
    s = schedules(store)
    await store.insert_messages([message("g1", 1), disappearing(2, NOW + 5, "bob")])
    await store.insert_messages([message("g1", 3)])
    await store.add_reaction("g1", 2, "carol", "👍")
    await store.set_pinned("g1", 2, True)
    await store.hide_message("g1", 2, "carol")
    reply = Message(
        **{
            **{f: getattr(message("g1", 4), f) for f in Message.__struct_fields__},
            "reply_to": 2,
        }
    )
    await store.insert_messages([reply])
    assert await store.expire_message("g1", 2) is True
    assert await store.expire_message("g1", 2) is False  # idempotent
    assert await store.expire_message("g1", 99) is False
    assert [m.seq for m in await store.page_messages("g1", limit=50)] == [1, 3, 4]
    assert [m.seq for m in await store.page_messages("g1", after_seq=0)] == [1, 3, 4]
    assert [m.seq for m in await store.page_messages("g1", after_seq=1, viewer_id="bob")] == [3, 4]
    assert [m.seq for m in await store.page_messages("g1", before_seq=3)] == [1]
    assert await store.get_message("g1", 2) is None
    assert await store.list_pinned("g1") == []
    assert [m.seq for m in await store.list_thread("g1", 1)] == []
    # The expiry stays due until it is finished (its event sent): a claimer that died
    # between the two leaves it for the next one, which expires nothing twice.
    assert await s.next_due() == NOW + 5
    await s.finish_expiry("g1", 2)
    assert await s.next_due() is None
    assert await store.last_seq("g1") == 4  # the seq is not a hole to fill again
    # A retried send of the expired message's client id is its duplicate, not a new message.
    stub = await store.find_by_client_id("g1", "bob", "c2")
    assert stub is not None
    assert (stub.seq, stub.content, stub.deleted, stub.metadata, stub.reactions) == (
        2,
        "",
        True,
        {},
        {},
    )
    [retry] = await store.insert_messages(
        [
            Unsequenced(
                conversation_id="g1",
                id="again",
                client_id="c2",
                sender_id="bob",
                kind="text",
                content="hello 2",
                created_at=NOW + 9,
            )
        ]
    )
    assert (retry.status, retry.message.seq, retry.message.content) == ("duplicate", 2, "")
    # Nothing can be done to it any more.
    for call in (
        store.edit_message("g1", 2, "back", NOW + 10),
        store.add_reaction("g1", 2, "alice", "👍"),
        store.set_pinned("g1", 2, True),
    ):
        with pytest.raises(WhisprError) as refused:
            await call
        assert refused.value.reason in (Reason.NOT_FOUND, Reason.INVALID)
    assert await store.page_messages("g1", after_seq=1, limit=1) == [
        m for m in await store.page_messages("g1", after_seq=2, limit=1)
    ]


async def test_an_expired_last_message_is_not_a_conversation_list_s_last(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1), disappearing(2, NOW + 5)])
    await store.expire_message("g1", 2)
    [summary] = await store.list_user_conversations("bob", 10)
    assert summary.last_message is not None
    assert summary.last_message.seq == 1
    assert summary.unread_count == 1
