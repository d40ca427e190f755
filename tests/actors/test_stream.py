"""ConversationStream: subscribe-then-read, seq order, gaps waited for and filled, bounds.

The stream is driven here with the in-process broker and a store held in a dict: every
message ever committed is "stored", and the test decides which of them are also published
live, in which order, and how often, as two nodes' actors and a node dying would.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.events import conversation_topic, encode_event
from actors.model import Message
from actors.stream import ConversationStream, PositionCheck, StreamItem
from whispr.broker.local import MemoryBroker

CONVERSATION = "c1"
TOPIC = conversation_topic(CONVERSATION)
PAGE = 3  # small, so that catch-up and fills cross page boundaries


def message(seq: int) -> Message:
    return Message(
        conversation_id=CONVERSATION,
        id=f"m{seq}",
        seq=seq,
        client_id=f"c{seq}",
        sender_id="alice",
        kind="text",
        content=f"message {seq}",
        created_at=float(seq),
    )


class Follower:
    """A stream over a dict store, recording what it delivers (seqs; other events by name)."""

    def __init__(
        self,
        stored: int,
        *,
        grace_s: float = 0.001,
        held_limit: int = 10_000,
        read_delay: float = 0.0,
        check_every_s: float | None = None,
    ) -> None:
        self.read_delay = read_delay
        #: The node's position check over this store, when asked for.
        self.positions = (
            None if check_every_s is None else PositionCheck(self.heads, interval_s=check_every_s)
        )
        self.store_down = False
        self.broker = MemoryBroker()
        self.store = {seq: message(seq) for seq in range(1, stored + 1)}
        self.received: list[int | str] = []
        self.sources: list[str] = []
        self.overflows = 0
        self.reads = 0
        self.stream = ConversationStream(
            self.broker,
            CONVERSATION,
            read_page=self.read_page,
            page_size=PAGE,
            deliver=self.deliver,
            on_overflow=self.overflow,
            grace_s=grace_s,
            held_limit=held_limit,
            positions=self.positions,
        )

    async def read_page(self, after_seq: int) -> Sequence[Message]:
        self.reads += 1
        if self.store_down:
            raise ConnectionError("the store is down")
        await asyncio.sleep(self.read_delay)  # a real read yields to the loop
        return [self.store[seq] for seq in sorted(self.store) if seq > after_seq][:PAGE]

    def deliver(self, item: StreamItem) -> None:
        if isinstance(item, Message):
            self.received.append(item.seq)
            self.sources.append("store")
        elif item.head is not None:
            self.received.append(item.head.seq)
            self.sources.append("live")
        else:
            self.received.append(item.name)
            self.sources.append("live")

    def overflow(self) -> None:
        self.overflows += 1

    async def heads(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        return (
            {CONVERSATION: max(self.store, default=0)} if CONVERSATION in conversation_ids else {}
        )

    def publish(self, seq: int) -> None:
        self.broker.publish(TOPIC, encode_event("new_message", {"message": self.store[seq]}))

    def publish_other(self, name: str) -> None:
        self.broker.publish(TOPIC, encode_event(name, {"seq": 1}))

    async def settle(self) -> None:
        """Let every gap's grace pass and every fill finish."""
        for _ in range(20):
            await asyncio.sleep(0.005)


async def test_replay_then_live_without_duplicates_or_holes() -> None:
    f = Follower(stored=7)
    await f.stream.subscribe()
    replayed = []
    async for m in f.stream.replay(2):
        replayed.append(m.seq)
        if m.seq == 4:  # published while catch-up runs: held, then skipped as sent
            f.publish(4)
            f.publish(5)
    f.store[8] = message(8)
    f.publish(8)  # committed after the read: live
    f.stream.go_live()
    await f.settle()
    assert replayed == [3, 4, 5, 6, 7]
    assert f.received == [8]
    assert f.stream.position == 8


async def test_events_other_than_messages_pass_in_publish_order() -> None:
    f = Follower(stored=2)
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.publish(1)
    f.publish_other("reaction_changed")
    f.stream.go_live()
    f.publish_other("user_typing")
    f.publish(2)
    await f.settle()
    assert f.received == [1, "reaction_changed", "user_typing", 2]


async def test_an_overtaken_event_is_waited_for_not_read() -> None:
    f = Follower(stored=3, grace_s=0.05)
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.stream.go_live()
    f.publish(2)  # overtook 1
    f.publish(1)
    f.publish(3)
    await f.settle()
    assert f.received == [1, 2, 3]
    assert f.sources == ["live"] * 3
    assert f.reads == 0


async def test_an_event_that_never_comes_is_read_from_the_store() -> None:
    f = Follower(stored=6)
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.stream.go_live()
    f.publish(1)
    f.publish(6)  # 2..5 died with their node: more than a page is missing
    await f.settle()
    assert f.received == [1, 2, 3, 4, 5, 6]
    assert f.sources == ["live", "store", "store", "store", "store", "live"]


async def test_a_gap_the_store_cannot_fill_ends_the_follower_instead_of_skipping() -> None:
    f = Follower(stored=4)
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.stream.go_live()
    f.publish(1)
    f.store_down = True
    f.publish(4)  # 2 and 3 lost live, and the store is down
    await f.settle()
    assert f.overflows == 1  # told to end (and resume from its position)
    assert f.received == [1]  # 4 was never shown over the hole
    assert f.stream.position == 1


async def test_too_many_held_events_say_so() -> None:
    f = Follower(stored=10, held_limit=3)
    await f.stream.subscribe()
    for seq in range(1, 6):
        f.publish(seq)
    assert f.overflows >= 1


async def test_close_stops_deliveries_and_a_fill_under_way() -> None:
    f = Follower(stored=5, read_delay=0.1)
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.stream.go_live()
    f.publish(5)  # a gap: its fill will be reading the store when the stream closes
    for _ in range(50):
        if f.reads:
            break
        await asyncio.sleep(0.005)
    assert f.reads == 1
    f.stream.close()
    f.publish(1)
    await asyncio.sleep(0.2)  # past the read: a fill not cancelled would deliver now
    assert f.received == []


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    stored=st.integers(min_value=1, max_value=12),
)
def test_any_live_order_reaches_the_follower_once_in_order(
    data: st.DataObject, stored: int
) -> None:
    # Whatever subset of the messages is published, in whatever order, however often: the
    # follower gets every seq after its position up to the highest published, once, in order.
    since = data.draw(st.integers(min_value=0, max_value=stored), label="since")
    published = data.draw(
        st.lists(st.integers(min_value=1, max_value=stored), max_size=3 * stored),
        label="published",
    )

    async def run() -> list[int | str]:
        f = Follower(stored=stored)
        await f.stream.subscribe()
        f.stream.start_at(since)
        f.stream.go_live()
        for seq in published:
            f.publish(seq)
            if data.draw(st.booleans(), label="pause"):
                await asyncio.sleep(0.002)
        await f.settle()
        f.stream.close()
        return f.received

    received = asyncio.run(run())
    top = max([since, *published])
    assert received == list(range(since + 1, top + 1))


@pytest.mark.parametrize("since", [0, 1, 3, 6, 9])
async def test_replay_pages_through_the_store(since: int) -> None:
    f = Follower(stored=9)
    await f.stream.subscribe()
    seqs = [m.seq async for m in f.stream.replay(since)]
    assert seqs == list(range(since + 1, 10))
    assert f.stream.position == max(since, 9)


async def test_a_message_whose_event_was_lost_with_no_later_one_is_found_by_the_check() -> None:
    # Its publisher died between commit and publish: no later message reveals the gap.
    f = Follower(stored=3, check_every_s=0.01)
    assert f.positions is not None
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.stream.go_live()
    f.publish(1)  # 2 and 3 are committed, their events lost
    await f.settle()
    assert f.received == [1, 2, 3]
    assert f.sources == ["live", "store", "store"]
    f.stream.close()
    f.positions.close()


async def test_the_check_leaves_an_event_on_its_way_to_arrive() -> None:
    f = Follower(stored=2, grace_s=0.05, check_every_s=3600)
    assert f.positions is not None
    await f.stream.subscribe()
    f.stream.start_at(0)
    f.stream.go_live()
    f.publish(1)
    await f.positions.check()  # the store has 2, whose event is about to arrive
    f.publish(2)
    await f.settle()
    assert f.received == [1, 2]
    assert f.reads == 0  # nothing read: the event came within the grace
    f.stream.close()
    f.positions.close()


async def test_a_closed_stream_lets_go_of_its_followers_callbacks() -> None:
    # A follower holds its stream and gives it its own bound methods: once the stream is
    # closed, the follower must be freed by reference counting, not left a cycle for the
    # collector (whispr/gc_policy.py makes its full collections rare).
    class Owner:
        def __init__(self, broker: MemoryBroker) -> None:
            self.stream = ConversationStream(
                broker,
                CONVERSATION,
                read_page=_no_page,
                page_size=PAGE,
                deliver=self.deliver,
                on_overflow=self.overflow,
                on_revoked=self.revoked,
            )

        def deliver(self, item: StreamItem) -> None: ...

        def overflow(self) -> None: ...

        def revoked(self) -> None: ...

    owner = Owner(MemoryBroker())
    await owner.stream.subscribe()
    owner.stream.close()
    gone = weakref.ref(owner)
    gc.disable()
    try:
        del owner
        assert gone() is None
    finally:
        gc.enable()


async def _no_page(_after_seq: int) -> Sequence[Message]:
    return []
