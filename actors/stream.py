"""``ConversationStream``: one follower's position in a conversation's stream of events.

A conversation is a stream with a position, as in Centrifuge: every message has a ``seq``,
the store holds the history, and the broker carries what happens next. Following it means
three things that only work together, so they live here once, for every consumer (a
WebSocket channel, a gRPC ``FollowConversation`` stream):

1. **Subscribe, then read.** :meth:`ConversationStream.subscribe` starts receiving live
   events and holds them back; the stored messages the follower missed are then read and
   sent (:meth:`ConversationStream.replay`); :meth:`ConversationStream.go_live` releases
   what was held, without what catch-up already sent. Nothing falls between the read and
   the subscription, and nothing arrives twice.
2. **Seq order.** Live ``new_message`` events go out in ``seq`` order, each once.
3. **Gaps are waited for, then filled.** A ``seq`` that skips ahead has two causes. Usually
   the missing event is on its way: two nodes' actors sequence the same conversation and
   publish independently, so one's event can overtake the other's. Rarely it will never
   come (its node died between commit and publish). So events are held for
   :data:`GAP_GRACE_S`, then sent in seq order; what is still missing is read from the store
   and sent before anything later. If the store cannot be read, the follower is ended (it
   resumes from its position) rather than shown a hole. Reading at once made every
   overtaking a store read: two nodes under load then spent their store connections filling
   gaps that were closing by themselves.

4. **A lost event is found without a later one.** A message whose live event never comes
   and that no later message reveals (its publisher died between commit and publish, or
   the broker was away) would wait for the next message. So a node checks the positions of
   the conversations its streams follow against the store every :data:`POSITION_CHECK_S`
   (:class:`PositionCheck`: one read of all their last seqs); a stream behind the store
   reads what it missed, as for a gap. A follower therefore has every committed message
   within about that interval, whatever the broker lost.

What the follower receives, through its ``deliver`` callback, is either a live
:class:`~actors.events.BrokerEvent` (any event of the conversation, in publish order, with
new messages in seq order) or a stored :class:`~actors.model.Message` (a gap filled from the
store). ``deliver`` is called on the event loop and must not block: a consumer that cannot
keep up says so by its own bounds (the gateway's outbound buffer, gRPC's backlog).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

import msgspec

from actors.broker import Broker, Subscription
from actors.events import BrokerEvent, conversation_topic, decode_event
from actors.model import Message

__all__ = [
    "GAP_GRACE_S",
    "HELD_EVENTS_LIMIT",
    "POSITION_CHECK_S",
    "ConversationStream",
    "Deliver",
    "PositionCheck",
    "ReadHeads",
    "ReadMemberships",
    "ReadPage",
    "StreamItem",
]

logger = logging.getLogger("whispr.stream")

#: Seconds a gap in a conversation's live events may stay open before it is read from the store.
GAP_GRACE_S: Final = 0.05
#: Live events one follower may hold back during a catch-up or a gap fill.
HELD_EVENTS_LIMIT: Final = 10_000
#: Seconds between two checks of the followed conversations' positions against the store:
#: the longest a committed message whose live event was lost waits for its followers.
POSITION_CHECK_S: Final = 5.0

StreamItem = BrokerEvent | Message
"""What a follower receives: a live event, or a stored message read to fill a gap."""

Deliver = Callable[[StreamItem], None]
"""Called on the event loop with each item, in order; must not block."""

ReadPage = Callable[[int], Awaitable[Sequence[Message]]]
"""The stored messages after a seq, ascending, at most one page."""

ReadHeads = Callable[[Sequence[str]], Awaitable[dict[str, int]]]
"""The last seq of each of these conversations, as the store has it."""

ReadMemberships = Callable[[Sequence[tuple[str, str]]], Awaitable[set[tuple[str, str]]]]
"""Which of these ``(conversation_id, user_id)`` pairs are memberships, as the store has it."""


def _closed_deliver(_item: StreamItem) -> None:
    """What a closed stream delivers to: nothing (it delivers nothing once closed)."""


def _nothing() -> None:
    """What a closed stream calls back: nothing."""


class ConversationStream:
    """One follower's position in one conversation; see the module's docstring.

    ``read_page`` reads the store as the follower may see it (the gateway passes the
    member's view, with messages they hid left out); ``page_size`` is the most it returns,
    so a shorter page is the end. ``on_overflow`` is called (possibly more than once) when
    the follower cannot be served live in order: more than ``held_limit`` live events wait
    behind a catch-up or a gap, or a gap could not be read from the store (it is down). The
    follower should then end and resume from its position; nothing is ever skipped.
    """

    def __init__(
        self,
        broker: Broker,
        conversation_id: str,
        *,
        read_page: ReadPage,
        page_size: int,
        deliver: Deliver,
        on_overflow: Callable[[], None],
        grace_s: float = GAP_GRACE_S,
        held_limit: int = HELD_EVENTS_LIMIT,
        positions: PositionCheck | None = None,
        viewer_id: str | None = None,
        on_revoked: Callable[[], None] | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        #: The member following (None: a trusted service), checked with the positions.
        self.viewer_id = viewer_id
        self.topic = conversation_topic(conversation_id)
        #: The last seq delivered (or caught up to); None until catch-up or ``start_at``.
        self.position: int | None = None
        self._broker = broker
        self._read_page = read_page
        self._page_size = page_size
        self._deliver = deliver
        self._on_overflow = on_overflow
        self._grace_s = grace_s
        self._held_limit = held_limit
        #: Live events held back while catching up or filling a gap; None when live.
        self._held: list[BrokerEvent] | None = []
        self._subscription: Subscription | None = None
        self._gap_timer: asyncio.TimerHandle | None = None
        self._check_timer: asyncio.TimerHandle | None = None
        self._filling: asyncio.Task[None] | None = None
        self._positions = positions
        self._on_revoked = on_revoked
        self._closed = False

    # -- the follower's steps -------------------------------------------------------------

    async def subscribe(self) -> None:
        """Start receiving live events, held back until :meth:`go_live`."""
        subscription = await self._broker.subscribe(self.topic, self._on_event)
        if self._closed:
            subscription.cancel()
        else:
            self._subscription = subscription

    async def read_page(self, after_seq: int) -> Sequence[Message]:
        """One page of stored messages after ``after_seq`` (a join's first catch-up page)."""
        return await self._read_page(after_seq)

    async def replay(
        self, after_seq: int, first_page: Sequence[Message] | None = None
    ) -> AsyncIterator[Message]:
        """Every stored message after ``after_seq``, in order; then the position is the last.

        The consumer sends each one as it comes (and may wait for its client to read);
        ``first_page``, when given, is the page after ``after_seq`` already read. Live
        events stay held meanwhile, and :meth:`go_live` skips those replayed.
        """
        position = after_seq
        page = first_page if first_page is not None else await self._read_page(after_seq)
        while not self._closed:
            for message in page:
                yield message
                position = message.seq
                if self._closed:
                    break
            if len(page) < self._page_size:
                break
            page = await self._read_page(position)
        self.position = position

    def start_at(self, seq: int) -> None:
        """Follow from ``seq`` on, without catching up (what came before is history)."""
        self.position = seq

    def go_live(self) -> None:
        """Release the held events (those already sent are skipped by seq) and stay live."""
        if self._positions is not None and not self._closed:
            self._positions.add(self)
        held, self._held = self._held or [], None
        for event in held:
            if self._held is not None:  # a new gap: hold the rest again
                self._held.append(event)
            else:
                self._offer(event)

    def close(self) -> None:
        """Stop: no more deliveries, the subscription and any gap fill cancelled.

        The follower's callbacks are let go: they are usually its bound methods, and the
        follower holds this stream, so keeping them would leave the pair a reference cycle
        that only the cyclic collector frees (rarely, with the node's thresholds:
        whispr/gc_policy.py) instead of reference counting, as soon as the follower is gone.
        """
        self._closed = True
        self._held = None
        self._deliver = _closed_deliver
        self._on_overflow = _nothing
        self._on_revoked = None
        if self._positions is not None:
            self._positions.discard(self)
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        for timer in (self._gap_timer, self._check_timer):
            if timer is not None:
                timer.cancel()
        self._gap_timer = self._check_timer = None
        if self._filling is not None:
            self._filling.cancel()
            self._filling = None

    def check_position(self, head: int) -> None:
        """The store's last seq is ``head``: if this stream is behind it, read what it missed.

        Only a live stream with no gap open is checked (a catch-up or a fill reads the store
        anyway). An event on its way when the store was read is given the gap's grace to
        arrive before anything is read.
        """
        if self._closed or self._held is not None or self._check_timer is not None:
            return
        position = self.position
        if position is not None and head > position:
            self._check_timer = asyncio.get_running_loop().call_later(
                self._grace_s, self._catch_up_to, head
            )

    def revoke(self) -> None:
        """The viewer is no longer a member: stop, and tell the follower."""
        if self._closed:
            return
        on_revoked = self._on_revoked
        self.close()
        if on_revoked is not None:
            on_revoked()

    def _catch_up_to(self, head: int) -> None:
        self._check_timer = None
        position = self.position
        if self._closed or self._held is not None or position is None or position >= head:
            return
        self._held = []
        self._filling = asyncio.get_running_loop().create_task(self._fill(position, head + 1))

    # -- live events ----------------------------------------------------------------------

    def _on_event(self, _topic: str, data: bytes) -> None:
        if self._closed:
            return
        try:
            event = decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            logger.warning("undecodable event on %s dropped", self.topic)
            return
        held = self._held
        if held is not None:
            held.append(event)
            if len(held) > self._held_limit:
                self._on_overflow()
        else:
            self._offer(event)

    def _offer(self, event: BrokerEvent) -> None:
        """Deliver a live event, unless it was sent already or follows a gap (then hold)."""
        seq = event.seq
        if seq is not None:
            last = self.position
            if last is not None and seq <= last:
                return  # sent already, by catch-up or a gap fill
            if last is not None and seq > last + 1:
                self._held = [event]
                self._gap_timer = asyncio.get_running_loop().call_later(
                    self._grace_s, self._close_gap
                )
                return
            self.position = seq
        self._deliver(event)

    def _close_gap(self) -> None:
        """The gap's grace is over: send what came in seq order, read what did not."""
        self._gap_timer = None
        held = self._held
        if self._closed or held is None:
            return
        last = self.position or 0
        # Messages go out in seq order, in the places messages were held (other events stay).
        places = [i for i, event in enumerate(held) if event.head is not None]
        messages = sorted((held[i] for i in places), key=_seq_of)
        for place, event in zip(places, messages, strict=True):
            held[place] = event
        expected = last + 1
        for event in messages:
            seq = _seq_of(event)
            if seq > expected:  # still a hole: read it (and what is held before it)
                self._filling = asyncio.get_running_loop().create_task(self._fill(last, seq))
                return
            expected = max(expected, seq + 1)
        self.go_live()

    async def _fill(self, after: int, upto: int) -> None:
        """Send the stored messages ``after < seq < upto``, then release what is held."""
        try:
            while after < upto - 1 and not self._closed:
                page = await self._read_page(after)
                for message in page:
                    if message.seq >= upto or self._closed:
                        break
                    self._deliver(message)
                    after = message.seq
                if len(page) < self._page_size:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Never skip what could not be read: the follower ends, and resumes from its
            # position (a client reconnects with its last seq) once the store answers.
            logger.warning("gap fill on %s failed: %s", self.topic, exc)
            if not self._closed:
                self._on_overflow()
            return
        if self._closed:
            return
        self._filling = None
        self.position = max(self.position or 0, upto - 1)
        self.go_live()


def _seq_of(event: BrokerEvent) -> int:
    assert event.head is not None
    return event.head.seq


class PositionCheck:
    """One node's check of its streams' positions against the store (see point 4 above).

    Streams register when they go live and leave when they close; while any is registered,
    a task reads the last seq of every followed conversation in one call every
    ``interval_s`` and tells each stream. With ``read_memberships``, the same check asks
    whether each stream's viewer is still a member, in one more call, and revokes the
    streams of those who are not: a removal whose event was lost ends its follower within
    the interval too. A failed read (the store is down) is skipped: the next check covers it.
    """

    def __init__(
        self,
        read_heads: ReadHeads,
        read_memberships: ReadMemberships | None = None,
        *,
        interval_s: float = POSITION_CHECK_S,
    ) -> None:
        self._read_heads = read_heads
        self._read_memberships = read_memberships
        self._interval_s = interval_s
        self._streams: dict[str, set[ConversationStream]] = {}
        self._task: asyncio.Task[None] | None = None
        #: Checks asked for out of turn (``check_soon``), referenced until they end.
        self._soon: set[asyncio.Task[None]] = set()

    def add(self, stream: ConversationStream) -> None:
        """Check ``stream`` from now on (idempotent)."""
        self._streams.setdefault(stream.conversation_id, set()).add(stream)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, stream: ConversationStream) -> None:
        """Stop checking ``stream``."""
        streams = self._streams.get(stream.conversation_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[stream.conversation_id]

    def close(self) -> None:
        """Stop checking (the node is stopping)."""
        self._streams.clear()
        for task in (self._task, *self._soon):
            if task is not None:
                task.cancel()
        self._task = None

    def check_soon(self) -> None:
        """Check every registered stream now, beside the caller (the broker reconnected)."""
        if self._streams:
            task = asyncio.get_running_loop().create_task(self.check())
            self._soon.add(task)
            task.add_done_callback(self._soon.discard)

    async def check(self) -> None:
        """Check every registered stream now (also what the periodic task does)."""
        conversation_ids = list(self._streams)
        if not conversation_ids:
            return
        try:
            await self._check_memberships()
            heads = await self._read_heads(conversation_ids)
        except Exception as exc:
            logger.warning("position check failed: %s", exc)
            return
        for conversation_id, head in heads.items():
            for stream in list(self._streams.get(conversation_id, ())):
                stream.check_position(head)

    async def _check_memberships(self) -> None:
        if self._read_memberships is None:
            return
        viewed: dict[tuple[str, str], list[ConversationStream]] = {}
        for streams in self._streams.values():
            for stream in streams:
                if stream.viewer_id is not None:
                    pair = (stream.conversation_id, stream.viewer_id)
                    viewed.setdefault(pair, []).append(stream)
        if not viewed:
            return
        members = await self._read_memberships(list(viewed))
        for pair, revoked in viewed.items():
            if pair not in members:
                for stream in revoked:
                    stream.revoke()

    async def _run(self) -> None:
        while self._streams:
            await asyncio.sleep(self._interval_s)
            await self.check()
