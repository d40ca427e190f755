"""The scheduler on both stores, without the network: its one timer, and exactly-once.

The timer: a scheduler waiting for a schedule a day away reads nothing; an announcement of
an earlier time re-arms it, a later one does not; a schedule made through ``Schedules`` is
sent at its time. Exactly once: a property (hypothesis) over schedulers that claim, die
holding their claims and come back, in any order: every schedule becomes one message.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.admin import ConversationChanges
from actors.events import decode_event, payload_of
from actors.model import Draft
from actors.ports import ScheduleStore, Store
from actors.schedules import Schedules
from actors.scheduling import SCHEDULER_TOPIC, Schedule, timer_event
from tests.actors.conftest import Stack, build_stack
from whispr.scheduler import Scheduler


def _queues(store: Store) -> ScheduleStore:
    """Both stores keep the timer queues too."""
    return cast(ScheduleStore, store)


class _CountingReads:
    """The store, with its ``next_due`` reads counted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reads = 0

    async def next_due(self) -> float | None:
        self.reads += 1
        return await _queues(self._store).next_due()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_the_timer_waits_for_the_next_due_time_and_reads_nothing_meanwhile(
    stack: Stack,
) -> None:
    messaging = stack.messaging
    group = await messaging.create_group("ada", "g", ["bob"])
    counting = _CountingReads(stack.store)
    schedules = Schedules(messaging, _queues(stack.store))
    scheduler = Scheduler(schedules, counting, stack.broker, max_sleep_s=2 * 86_400)  # type: ignore[arg-type]
    day = time.time() + 86_400
    await schedules.schedule("ada", group.id, Draft(client_id="d", content="later"), day)
    await scheduler.start()
    try:
        for _ in range(100):  # its first look at the queues, then the timer for the next
            if scheduler.armed_at is not None and scheduler.armed_at > time.time() + 60:
                break
            await asyncio.sleep(0.01)
        assert scheduler.armed_at == day
        reads = counting.reads
        await asyncio.sleep(0.5)
        assert counting.reads == reads  # no polling while nothing is due

        # A later time announced changes nothing; an earlier one re-arms the timer.
        stack.broker.publish(SCHEDULER_TOPIC, timer_event(day + 10))
        assert scheduler.armed_at == day
        soon = time.time() + 0.3
        schedule = await schedules.schedule(
            "bob", group.id, Draft(client_id="s", content="soon"), soon
        )
        assert scheduler.armed_at == soon
        for _ in range(300):
            page = await messaging.history("ada", group.id)
            sent = [m for m in page if m.kind == "text"]
            if sent:
                break
            await asyncio.sleep(0.01)
        assert [(m.sender_id, m.content) for m in sent] == [("bob", "soon")]
        assert sent[0].metadata["scheduled"]["id"] == schedule.id
        assert sent[0].created_at >= soon
        for _ in range(100):  # the run ends by arming the timer for the next one
            if scheduler.armed_at == day:
                break
            await asyncio.sleep(0.01)
        assert scheduler.armed_at == day
    finally:
        await scheduler.close()


async def test_a_schedule_retried_after_it_was_sent_posts_nothing_more(stack: Stack) -> None:
    messaging = stack.messaging
    group = await messaging.create_group("ada", "g", [])
    schedules = Schedules(messaging, _queues(stack.store))
    scheduler = Scheduler(schedules, _queues(stack.store), stack.broker)
    await scheduler.start()
    try:
        draft = Draft(client_id="once", content="hello")
        first = await schedules.schedule("ada", group.id, draft, time.time())
        for _ in range(2):
            for _ in range(300):
                if not await schedules.pending("ada", group.id):
                    break
                await asyncio.sleep(0.01)
            again = await schedules.schedule("ada", group.id, draft, time.time())
            assert again.id == first.id
        for _ in range(300):
            if not await schedules.pending("ada", group.id):
                break
            await asyncio.sleep(0.01)
        page = await messaging.history("ada", group.id)
        assert [m.content for m in page if m.kind == "text"] == ["hello"]
    finally:
        await scheduler.close()


#: One step of the property: a scheduler claims (and maybe dies before finishing what it
#: claimed, or after sending but before finishing), or the clock moves on past the leases.
STEPS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["serve", "die_before", "die_after", "tick"])),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS, count=st.integers(1, 12))
async def test_every_schedule_becomes_one_message_whoever_claims_and_dies(
    store: Store, steps: list[tuple[int, str]], count: int
) -> None:
    stack = await build_stack(store)
    try:
        await _run_property(stack, steps, count)
    finally:
        stack.supervisor.stop(block=False)
        await stack.supervisor.wait_exit()


async def _run_property(stack: Stack, steps: list[tuple[int, str]], count: int) -> None:
    queues = _queues(stack.store)
    messaging = stack.messaging
    group = await messaging.create_group("ada", None, [])
    schedules = Schedules(messaging, queues)
    now = time.time()
    made = [
        await schedules.schedule(
            "ada", group.id, Draft(client_id=f"p{n}", content=f"m{n}"), now - count + n
        )
        for n in range(count)
    ]
    clock = now
    lease = 30.0

    async def claim(batch: int) -> list[Schedule]:
        return await queues.claim_schedules(clock, lease, batch)

    for who, step in [*steps, (0, "tick"), (0, "serve"), (0, "tick"), (0, "serve")]:
        batch = who + 1  # the schedulers differ by how much they claim at a time
        if step == "tick":
            clock += lease + 1
            continue
        claimed = await claim(batch)
        for schedule in claimed:
            if step == "die_before":
                break  # claimed, nothing sent: the lease runs out
            if step == "die_after":
                # Sent, but dead before dropping the schedule: sent again after the lease.
                await messaging.send(
                    schedule.sender_id,
                    schedule.conversation_id,
                    Draft(client_id=f"scheduled:{schedule.id}", content=schedule.draft.content),
                )
                break
            await schedules.dispatch(schedule)
    # Whatever happened, once the leases ran out and a scheduler served: all sent, once each.
    while await queues.next_due() is not None:
        clock += lease + 1
        for schedule in await claim(100):
            await schedules.dispatch(schedule)
    page = await messaging.history("ada", group.id, limit=200)
    contents = Counter(m.content for m in page if m.kind == "text")
    assert contents == Counter(s.draft.content for s in made)


class _HeldReads:
    """The store, with ``next_due`` held until the test lets it answer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def next_due(self) -> float | None:
        self.reading.set()
        await self.release.wait()
        return await _queues(self._store).next_due()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_time_announced_while_the_next_due_time_is_read_is_not_missed(
    stack: Stack,
) -> None:
    held = _HeldReads(stack.store)
    schedules = Schedules(stack.messaging, _queues(stack.store))
    scheduler = Scheduler(schedules, held, stack.broker, max_sleep_s=3600)  # type: ignore[arg-type]
    await scheduler.start()
    try:
        await asyncio.wait_for(held.reading.wait(), 5)
        # Written after the read began: the read cannot see it, the announcement can.
        soon = time.time() + 100
        stack.broker.publish(SCHEDULER_TOPIC, timer_event(soon))
        held.release.set()
        for _ in range(100):
            if scheduler.armed_at is not None and scheduler.armed_at > time.time() + 50:
                break
            await asyncio.sleep(0.01)
        assert scheduler.armed_at == soon
    finally:
        await scheduler.close()


async def test_a_schedule_is_refused_at_sending_time_when_its_author_may_no_longer_post(
    stack: Stack,
) -> None:
    messaging = stack.messaging
    group = await messaging.create_group("ada", "g", ["bob"])
    schedules = Schedules(messaging, _queues(stack.store))
    failed: list[bytes] = []
    await stack.broker.subscribe("user:bob", lambda _topic, data: failed.append(data))
    made = await schedules.schedule(
        "bob", group.id, Draft(client_id="b", content="hi"), time.time() + 60
    )
    await messaging.update_conversation(
        "ada", group.id, ConversationChanges(settings={"who_can_post": "admins"})
    )
    [claimed] = await _queues(stack.store).claim_schedules(time.time() + 61, 30.0, 10)
    assert claimed.id == made.id
    assert await schedules.dispatch(claimed) is None
    assert await _queues(stack.store).next_due() is None  # dropped, not retried
    events = [decode_event(data) for data in failed]
    [event] = [e for e in events if e.name == "schedule_failed"]
    assert payload_of(event)["reason"] == "forbidden"
    page = await messaging.history("ada", group.id)
    assert [m for m in page if m.sender_id == "bob"] == []
