"""``ConnectionActor``: one WebSocket connection, its channels and its outbound queue.

The socket's reader (the gateway's handler task) tells the actor each message it receives;
the actor runs the Phoenix protocol core (:class:`~whispr.protocol.ConnectionProtocol`) and
handles joins and pushes in order, like a Phoenix channel process, so replies keep the order
of the pushes. Only consecutive ``send_message`` pushes overlap (see "pipelined sends"):
they still commit and are answered in order, and anything else waits for them.

Backpressure, both ways:

- in: the reader takes a credit before telling the actor a message and the actor returns it
  once handled, so a client pushing faster than it is served stops being read (TCP pushes
  back) instead of filling the mailbox;
- out: frames are written to the socket's buffer at the end of the loop turn that sent
  them (one write per turn and socket); a client that does not read makes that buffer grow
  past ``outbound_buffer_bytes`` and is disconnected with 1013 (try again later); it
  reconnects and catches up from the store, so nothing is lost, and memory stays bounded.

Broker events do not go through the mailbox: the broker calls each subscriber synchronously
on the event loop, which is this actor's thread, so the handler cannot interleave with the
actor's own code; queueing them behind a push that awaits its commit would only add latency.
While a ``conversation:`` join catches up from the store, that channel's live events are held
back, then released without the ones catch-up already sent: what was missed arrives in
order, before live messages, with no duplicate and no hole.

A failure in a channel's handler crashes that channel only (``phx_error``; the client rejoins);
a failure of the actor itself closes the socket with 1011.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import structlog
from websockets.asyncio.server import ServerConnection

from actors.broker import Subscription
from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.events import conversation_topic, encode_event
from actors.model import Message
from supervisors import AsyncioActor
from whispr.auth import Identity
from whispr.gateway import events as ev
from whispr.gateway.context import GatewayContext
from whispr.gateway.fanout import Outgoing, outgoing
from whispr.protocol import (
    CloseCode,
    ConnectionProtocol,
    JoinRequested,
    LeaveRequested,
    ProtocolViolation,
    PushReceived,
    frames,
)
from whispr.protocol.presence import PRESENCE_STATE

__all__ = ["TOPIC_PREFIXES", "ConnectionActor", "Inbound", "Tick"]

log = structlog.get_logger("whispr.gateway")

TOPIC_PREFIXES: Final = ("user:", "conversation:", "notification:")
#: Messages read per page while catching up a conversation join.
CATCHUP_PAGE: Final = 200
#: Conversations whose new messages the ``user:`` channel announces (the most recent ones).
NOTICE_CONVERSATIONS: Final = 500
#: Live events one channel may hold back during a catch-up or a gap fill.
HELD_EVENTS_LIMIT: Final = 10_000
#: Seconds a gap in a conversation's live events may stay open before it is read from the store.
GAP_GRACE_S: Final = 0.05
#: Seconds a catch-up may wait for a client to read before the connection is dropped.
CATCHUP_SEND_TIMEOUT_S: Final = 30.0
#: Catch-up frames queued before they are written (and the client's reading is checked).
CATCHUP_WRITE_BYTES: Final = 64 * 1024


class Inbound(msgspec.Struct, frozen=True, gc=False):
    """A WebSocket message from the client (``str`` text, ``bytes`` binary)."""

    data: str | bytes


class Tick(msgspec.Struct, frozen=True, gc=False):
    """Periodic check: heartbeat timeout, token expiry."""

    now: float


@dataclass(slots=True, eq=False)
class _Channel:
    topic: str
    kind: str
    target: str
    join_ref: str
    subscriptions: list[Subscription] = field(default_factory=list)
    notices: dict[str, Subscription] = field(default_factory=dict)
    #: Live events held back while a join catches up or a gap is filled; None when live.
    held: list[Outgoing] | None = None
    #: ``conversation:`` only: the last seq sent on this channel (None before the first).
    last_seq: int | None = None
    #: ``conversation:`` only: the first catch-up page, read by the join, sent after its reply.
    catchup: list[Message] | None = None
    presence_ref: str | None = None


Handler = Callable[["ConnectionActor", _Channel, Any, str], Awaitable[dict[str, Any] | None]]


class ConnectionActor(AsyncioActor):
    """One client connection; see the module's docstring."""

    def __init__(
        self,
        ctx: GatewayContext,
        ws: ServerConnection,
        identity: Identity,
        credits: asyncio.Semaphore,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.ws = ws
        self.identity = identity
        self.user_id = identity.user_id
        settings = ctx.settings
        self.proto = ConnectionProtocol(
            max_size=settings.max_frame_bytes,
            heartbeat_timeout=settings.heartbeat_timeout_s,
            topic_prefixes=TOPIC_PREFIXES,
        )
        #: Taken by the reader per message told, returned here once it is handled.
        self.credits = credits
        self._buffer_limit = settings.outbound_buffer_bytes
        #: Frames sent and received since the last tick (added to the metrics in bulk: an
        #: OpenTelemetry ``add`` per frame costs more than writing the frame).
        self.sent = 0
        self.received = 0
        self._channels: dict[str, _Channel] = {}
        #: Work this actor started beside its messages (closes, gap fills, notices), kept
        #: referenced until it ends.
        self._tasks: set[asyncio.Task[None]] = set()
        #: ``send_message`` pushes started and not yet answered (referenced here alone).
        self._sending: set[asyncio.Task[None]] = set()
        self._closing = False
        #: Whether ``_flush`` is due this loop turn, and the bytes it will write.
        self._flush_scheduled = False
        self._queued_bytes = 0
        self._log = log.bind(user_id=self.user_id, device_id=identity.device_id)

    # -- life -----------------------------------------------------------------------------

    def on_start(self) -> None:
        self.ctx.online[self.user_id] += 1
        self.ctx.presence.device_connected(self.user_id)

    async def on_stop(self) -> None:
        await self._teardown()

    async def on_failure(self, *_exc_info: Any) -> None:
        self._log.error("connection actor crashed", exc_info=_exc_info)
        self.close(CloseCode.INTERNAL_ERROR, "internal error")
        await self._teardown()

    async def _teardown(self) -> None:
        online = self.ctx.online
        online[self.user_id] -= 1
        if online[self.user_id] <= 0:
            del online[self.user_id]
        self.ctx.presence.device_disconnected(self.user_id)
        for ended in self.proto.connection_closed():
            await self._end(ended.topic)
        for channel in list(self._channels.values()):
            await self._end(channel.topic)
        self._count_frames()

    def _count_frames(self) -> None:
        metrics = self.ctx.metrics
        if self.sent:
            metrics.messages_out.add(self.sent)
            self.sent = 0
        if self.received:
            metrics.messages_in.add(self.received)
            self.received = 0

    # -- messages -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Inbound):
            if self._closing:
                self.credits.release()
                return None
            events = self._parse(message.data)
            if len(events) == 1 and self._pipelined(events[0]):
                self._start_send(events[0])  # its credit comes back when it is answered
                return None
            return self._inbound(events)
        if isinstance(message, Tick):
            self._count_frames()
            if self.proto.tick(message.now):
                self.close(CloseCode.GOING_AWAY, "heartbeat timeout")
            elif self.identity.expires_at + 60.0 < time.time():
                self.close(CloseCode.POLICY_VIOLATION, "token expired")
        return None

    def _parse(self, data: str | bytes) -> list[Any]:
        self.received += 1
        proto = self.proto
        proto.receive_data(data, binary=isinstance(data, bytes))
        for out in proto.data_to_send():
            self.send(out)
        return list(proto.events_received())

    # -- pipelined sends ------------------------------------------------------------------
    #
    # A client's sends are not handled one at a time: each waits for its rate-limit count
    # and its commit, and a client sending faster than one commit's latency would be held to
    # one message per commit. So a ``send_message`` push starts at once, in a task of its
    # own, while the next frames are read; its inbound credit is returned when it is
    # answered, so the credits bound how many are in flight. Their order holds: they take
    # their rate-limit counts in order (one batch at a time), reach the conversation's
    # actor in order (its mailbox is FIFO), commit in that order and are answered in it.
    # Any other push, join or leave first waits for the sends in flight, so that it sees
    # their effects (a history page, a read cursor, a leave) as if they had been awaited.

    def _pipelined(self, event: Any) -> bool:
        if not isinstance(event, PushReceived) or event.event != "send_message":
            return False
        channel = self._channels.get(event.topic)
        return channel is not None and channel.kind == "conversation"

    def _start_send(self, push: PushReceived) -> None:
        task = asyncio.get_running_loop().create_task(self._push(push))
        self._sending.add(task)
        task.add_done_callback(self._send_done)

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self.credits.release()

    async def _inbound(self, events: list[Any]) -> None:
        try:
            if self._sending:  # no send starts meanwhile: this message holds the actor
                await asyncio.wait(set(self._sending))
            await self._handle_events(events)
        finally:
            self.credits.release()

    async def _handle_events(self, events: list[Any]) -> None:
        for event in events:
            if self._closing:
                return
            if isinstance(event, PushReceived):
                await self._push(event)
            elif isinstance(event, JoinRequested):
                await self._join(event)
            elif isinstance(event, LeaveRequested):
                await self._end(event.topic, event.join_ref)
            elif isinstance(event, ProtocolViolation):
                self.ctx.metrics.errors.add(1, {"reason": str(event.reason)})
                self.close(event.code, event.message)

    # -- sending --------------------------------------------------------------------------

    def send(self, data: bytes | None) -> None:
        """Queue one frame for the socket; it is written at the end of this loop turn.

        Frames go straight through the socket's sans-I/O protocol, with no task switch: this
        is the hot path of every delivery. The bytes reach the transport once per loop turn
        and connection, in one ``writelines`` (one system call): a send's reply and its
        broadcast to the sender, answered in the same turn, cost one write instead of two.
        A client that reads slower than it is sent to makes the transport's buffer grow;
        past ``outbound_buffer_bytes`` it is closed with 1013 (it reconnects and catches up
        from the store), so memory stays bounded.
        """
        if data is None or self._closing:
            return
        try:
            if frames.is_binary(data):
                self.ws.protocol.send_binary(data)
            else:
                self.ws.protocol.send_text(data)
        except Exception:  # the socket is closing: the reader ends and stops this actor
            return
        self.sent += 1
        self._queued_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what this turn's sends queued, in one call; disconnect a client that lags."""
        self._flush_scheduled = False
        self._queued_bytes = 0
        ws = self.ws
        chunks = ws.protocol.data_to_send()
        if not chunks:
            return  # the socket's own writes (websockets) took them already
        transport = ws.transport
        try:
            if all(chunks):
                transport.writelines(chunks)
            else:  # an end-of-stream marker among them: the socket's own writer knows it
                ws.protocol.writes[:0] = chunks
                ws.send_data()
            buffered = transport.get_write_buffer_size()
        except Exception:  # the socket is closing: the reader ends and stops this actor
            return
        if buffered > self._buffer_limit:
            self.ctx.metrics.errors.add(1, {"reason": "slow_client"})
            self._log.info("client too slow; disconnecting", buffered=buffered)
            self.close(CloseCode.TRY_AGAIN_LATER, "client too slow")

    async def _send_waiting(self, data: bytes | None) -> None:
        """Send one frame, first waiting for the client to read (catch-up pages)."""
        if data is None or self._closing:
            return
        if self.ws.transport.get_write_buffer_size() > self._buffer_limit // 2:
            try:
                await asyncio.wait_for(self.ws.drain(), CATCHUP_SEND_TIMEOUT_S)
            except TimeoutError:
                self.close(CloseCode.TRY_AGAIN_LATER, "client too slow")
                return
            except Exception:
                return
        self.send(data)
        if self._queued_bytes > min(CATCHUP_WRITE_BYTES, self._buffer_limit // 4):
            self._flush()  # now, so that the next frame's wait sees these in the buffer

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` beside this actor's messages, kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self, code: int, reason: str) -> None:
        """Close the socket (once); the reader then ends and stops this actor."""
        if self._closing:
            return
        if self._flush_scheduled:
            self._flush()  # frames queued before the close go before it
            if self._closing:
                return
        self._closing = True
        self._in_background(self.ws.close(code, reason))

    # -- joins ----------------------------------------------------------------------------

    async def _join(self, join: JoinRequested) -> None:
        kind, _, target = join.topic.partition(":")
        metrics = self.ctx.metrics
        channel = _Channel(join.topic, kind, target, join.join_ref, held=[])
        self._channels[join.topic] = channel
        try:
            response = await _JOINS[kind](self, channel, join.payload)
        except WhisprError as exc:
            metrics.joins.add(1, {"kind": kind, "outcome": str(exc.reason)})
            self._drop(channel)
            self.send(self.proto.reject_join(join.topic, exc, join_ref=join.join_ref))
            return
        except Exception:
            self._log.exception("join crashed", topic=join.topic)
            metrics.joins.add(1, {"kind": kind, "outcome": "crashed"})
            self._drop(channel)
            self.send(self.proto.channel_crashed(join.topic, join_ref=join.join_ref))
            return
        if self._channels.get(join.topic) is not channel:
            return  # left or rejoined meanwhile: _end dropped it
        reply = self.proto.accept_join(join.topic, response, join_ref=join.join_ref)
        if reply is None:
            self._drop(channel)
            return
        metrics.joins.add(1, {"kind": kind, "outcome": "ok"})
        self.send(reply)
        try:
            await _AFTER_JOIN[kind](self, channel, join.payload)
        except Exception:
            self._log.exception("channel crashed after join", topic=join.topic)
            await self._crash_channel(channel)

    def _release(self, channel: _Channel) -> None:
        """Go live: send the events held back (what was already sent is skipped by seq)."""
        held, channel.held = channel.held or [], None
        for item in held:
            if channel.held is not None:  # a new gap: hold the rest again
                channel.held.append(item)
            else:
                self._deliver(channel, item)

    def _in_order(self, channel: _Channel, seq: int) -> bool:
        """Whether ``new_message`` ``seq`` is next on ``channel``; holds what follows a gap.

        A gap has two causes. Usually the missing events are on their way: two nodes' actors
        sequence the same conversation and publish independently, so one's event can
        overtake the other's. Rarely they will never come (their node died between commit
        and publish). So events are held for :data:`GAP_GRACE_S`, then sent in seq order;
        what is still missing then is read from the store and sent before anything later,
        and a member never sees a hole. Reading at once made every overtaking a store read:
        two nodes under load then spent their store connections filling gaps that were
        closing by themselves.
        """
        last = channel.last_seq
        if last is not None and seq <= last:
            return False  # sent already, by catch-up or a gap fill
        if last is not None and seq > last + 1:
            channel.held = []
            asyncio.get_running_loop().call_later(GAP_GRACE_S, self._close_gap, channel)
            return False
        channel.last_seq = seq
        return True

    def _close_gap(self, channel: _Channel) -> None:
        """The gap's grace is over: send what came in seq order, read what did not."""
        held = channel.held
        if self._channels.get(channel.topic) is not channel or held is None:
            return
        last = channel.last_seq or 0
        # Messages go out in seq order, in the places messages were held (other events stay).
        places = [i for i, item in enumerate(held) if item.head is not None]
        messages = sorted((held[i] for i in places), key=_seq_of)
        for place, item in zip(places, messages, strict=True):
            held[place] = item
        expected = last + 1
        for item in messages:
            seq = _seq_of(item)
            if seq > expected:  # still a hole: read it (and what is held before it) from the store
                self._in_background(self._fill(channel, last, seq))
                return
            expected = max(expected, seq + 1)
        self._release(channel)

    async def _fill(self, channel: _Channel, after: int, upto: int) -> None:
        messaging = self.ctx.messaging
        try:
            while after < upto - 1 and self._channels.get(channel.topic) is channel:
                page = await messaging.history(
                    self.user_id, channel.target, after_seq=after, limit=CATCHUP_PAGE
                )
                for message in page:
                    if message.seq >= upto:
                        break
                    frame = {"message": message}
                    self.send(
                        self.proto.push(
                            channel.topic, "new_message", frame, join_ref=channel.join_ref
                        )
                    )
                    after = message.seq
                if len(page) < CATCHUP_PAGE:
                    break
        except Exception as exc:
            # The client can still page history for what is missing; live events go on.
            self._log.warning("gap fill failed", topic=channel.topic, error=str(exc))
        channel.last_seq = max(channel.last_seq or 0, upto - 1)
        self._release(channel)

    async def _subscribe(self, channel: _Channel, topic: str) -> None:
        def on_event(event_topic: str, data: bytes) -> None:
            item = outgoing(event_topic, data)
            if channel.held is not None:
                channel.held.append(item)
                if len(channel.held) > HELD_EVENTS_LIMIT:
                    self.close(CloseCode.TRY_AGAIN_LATER, "client too slow")
            else:
                self._deliver(channel, item)

        channel.subscriptions.append(await self.ctx.broker.subscribe(topic, on_event))

    def _deliver(self, channel: _Channel, item: Outgoing) -> None:
        if self._channels.get(channel.topic) is not channel:
            return
        if item.event == "user_typing" and item.user_id == self.user_id:
            return
        if item.event == "member_removed" and item.user_id == self.user_id:
            # Removed from the conversation: the channel ends for good (no rejoin).
            self.send(item.frame)
            self.send(self.proto.close_channel(channel.topic, join_ref=channel.join_ref))
            self._drop(channel)
            return
        if channel.kind == "user" and item.conversation_id:
            self._follow(channel, item)
        if item.head is not None and channel.kind == "conversation":
            if channel.held is not None:
                channel.held.append(item)
                return
            if not self._in_order(channel, item.head.seq):
                if channel.held is not None:
                    channel.held.append(item)  # the one that showed the gap, after the fill
                return
        self.send(self.proto.broadcast(channel.topic, item.frame))

    def _follow(self, channel: _Channel, item: Outgoing) -> None:
        """Keep the ``user:`` channel's notices in step with the user's conversations."""
        if item.event == "conversation_added":
            self._in_background(_watch_for_notices(self, channel, item.conversation_id))
        elif item.event == "conversation_removed":
            subscription = channel.notices.pop(item.conversation_id, None)
            if subscription is not None:
                subscription.cancel()

    # -- pushes ---------------------------------------------------------------------------

    async def _push(self, push: PushReceived) -> None:
        channel = self._channels.get(push.topic)
        if channel is None or channel.join_ref != push.join_ref:
            return
        metrics = self.ctx.metrics
        began = time.perf_counter()
        kinds = ev.CLIENT_EVENTS.get(channel.kind, {})
        payload_type = kinds.get(push.event)
        try:
            if payload_type is None:
                raise WhisprError(
                    Reason.INVALID,
                    f"unknown event {push.event!r} on {channel.kind}: topics",
                    events=sorted(kinds),
                )
            payload = ev.decode_payload(payload_type, push.payload)
            response = await _PUSHES[push.event](self, channel, payload, push.event)
        except WhisprError as exc:
            metrics.errors.add(1, {"reason": str(exc.reason)})
            if push.ref is not None:
                self.send(
                    self.proto.reply(push.topic, push.ref, "error", exc, join_ref=push.join_ref)
                )
            return
        except Exception:
            self._log.exception("channel crashed", topic=push.topic, push_event=push.event)
            await self._crash_channel(channel)
            return
        finally:
            # Unknown events share one label: a client cannot grow the metric's series.
            event = push.event if payload_type is not None else "unknown"
            metrics.push_latency.record(time.perf_counter() - began, event)
        if push.ref is not None:
            self.send(
                self.proto.reply(push.topic, push.ref, "ok", response or {}, join_ref=push.join_ref)
            )

    async def _crash_channel(self, channel: _Channel) -> None:
        self.ctx.metrics.errors.add(1, {"reason": "channel_crash"})
        self.send(self.proto.channel_crashed(channel.topic, join_ref=channel.join_ref))
        await self._end(channel.topic, channel.join_ref)

    # -- ends -----------------------------------------------------------------------------

    def _drop(self, channel: _Channel) -> None:
        """Forget a channel instance and cancel its subscriptions (presence: see _end)."""
        if self._channels.get(channel.topic) is channel:
            del self._channels[channel.topic]
        for subscription in channel.subscriptions:
            subscription.cancel()
        for subscription in channel.notices.values():
            subscription.cancel()
        channel.subscriptions.clear()
        channel.notices.clear()
        channel.held = None

    async def _end(self, topic: str, join_ref: str | None = None) -> None:
        channel = self._channels.get(topic)
        if channel is None or (join_ref is not None and channel.join_ref != join_ref):
            return
        self._drop(channel)
        if channel.presence_ref is not None:
            ref, channel.presence_ref = channel.presence_ref, None
            await self.ctx.presence.untrack(topic, self.user_id, ref)


def _seq_of(item: Outgoing) -> int:
    assert item.head is not None
    return item.head.seq


# -- topics: joins ----------------------------------------------------------------------------


def _own_topic(actor: ConnectionActor, channel: _Channel) -> None:
    if channel.target != actor.user_id:
        raise WhisprError(Reason.FORBIDDEN, f"{channel.kind}: topics are their owner's only")


async def _join_conversation(
    actor: ConnectionActor, channel: _Channel, payload: dict[str, Any]
) -> dict[str, Any]:
    params = ev.decode_payload(ev.ConversationJoin, payload)
    if params.last_seq is not None and params.last_seq < 0:
        raise WhisprError(Reason.INVALID, "last_seq must not be negative", field="last_seq")
    messaging = actor.ctx.messaging
    conversation = await messaging.conversation(actor.user_id, channel.target)
    # Subscribed (events held) before catch-up reads the store: nothing falls in between.
    await actor._subscribe(channel, channel.topic)
    reply = {"conversation": msgspec.to_builtins(conversation)}
    if params.last_seq is not None:
        # Catching up: the first page is read now and sent right after the reply. Live
        # events stay held until catch-up is sent, which then sets where the channel is.
        page = await messaging.history(
            actor.user_id, channel.target, after_seq=params.last_seq, limit=CATCHUP_PAGE
        )
        channel.catchup = page
        channel.last_seq = params.last_seq
        if len(page) < CATCHUP_PAGE:  # all of it: where the client will be once it arrives
            return {**reply, "last_seq": page[-1].seq if page else params.last_seq}
    # Where the channel starts: live events up to here are already history. Without this
    # baseline, the first live event would be taken as the start, and an earlier one
    # arriving after it (two nodes publish independently) would look like a duplicate.
    latest = await messaging.history(actor.user_id, channel.target, limit=1)
    head = latest[-1].seq if latest else 0
    channel.last_seq = head if params.last_seq is None else min(params.last_seq, head)
    return {**reply, "last_seq": head}


async def _after_conversation_join(
    actor: ConnectionActor, channel: _Channel, payload: dict[str, Any]
) -> None:
    params = ev.decode_payload(ev.ConversationJoin, payload)
    ctx, topic = actor.ctx, channel.topic
    if params.last_seq is not None:
        after = params.last_seq
        page, channel.catchup = channel.catchup or [], None
        while True:
            for message in page:
                push = actor.proto.push(
                    topic, "new_message", {"message": message}, join_ref=channel.join_ref
                )
                await actor._send_waiting(push)
            if page:
                after = page[-1].seq
            if len(page) < CATCHUP_PAGE:
                break
            page = await ctx.messaging.history(
                actor.user_id, channel.target, after_seq=after, limit=CATCHUP_PAGE
            )
        channel.last_seq = after
    state = await ctx.presence.state(topic)
    actor.send(actor.proto.push(topic, PRESENCE_STATE, state, join_ref=channel.join_ref))
    actor._release(channel)
    meta = {"device": actor.identity.device_id, "online_at": time.time()}
    if actor._channels.get(topic) is channel:
        channel.presence_ref = await ctx.presence.track(topic, actor.user_id, meta)


async def _join_user(
    actor: ConnectionActor, channel: _Channel, payload: dict[str, Any]
) -> dict[str, Any]:
    _own_topic(actor, channel)
    await actor._subscribe(channel, channel.topic)
    unread = await actor.ctx.messaging.unread_counts(actor.user_id)
    return {"unread": unread}


async def _after_user_join(
    actor: ConnectionActor, channel: _Channel, payload: dict[str, Any]
) -> None:
    actor._release(channel)
    summaries = await actor.ctx.messaging.list_conversations(
        actor.user_id, limit=NOTICE_CONVERSATIONS
    )
    for summary in summaries:
        await _watch_for_notices(actor, channel, summary.conversation.id)


async def _watch_for_notices(
    actor: ConnectionActor, channel: _Channel, conversation_id: str
) -> None:
    """Announce new messages of one conversation on the user's channel (metadata only)."""
    if conversation_id in channel.notices or actor._channels.get(channel.topic) is not channel:
        return

    def on_event(_topic: str, data: bytes) -> None:
        item = outgoing(_topic, data)
        if item.head is None or actor._channels.get(channel.topic) is not channel:
            return
        head = item.head
        notice = {
            "conversation_id": head.conversation_id,
            "seq": head.seq,
            "sender_id": head.sender_id,
            "kind": head.kind,
            "created_at": head.created_at,
        }
        actor.send(actor.proto.push(channel.topic, "message_notice", notice))

    subscription = await actor.ctx.broker.subscribe(conversation_topic(conversation_id), on_event)
    if actor._channels.get(channel.topic) is channel and conversation_id not in channel.notices:
        channel.notices[conversation_id] = subscription
    else:
        subscription.cancel()


async def _join_notification(
    actor: ConnectionActor, channel: _Channel, payload: dict[str, Any]
) -> dict[str, Any]:
    _own_topic(actor, channel)
    await actor._subscribe(channel, channel.topic)
    return {}


async def _release_only(actor: ConnectionActor, channel: _Channel, payload: dict[str, Any]) -> None:
    actor._release(channel)


_JOINS: Final[dict[str, Callable[[ConnectionActor, _Channel, dict[str, Any]], Awaitable[Any]]]] = {
    "conversation": _join_conversation,
    "user": _join_user,
    "notification": _join_notification,
}
_AFTER_JOIN: Final[
    dict[str, Callable[[ConnectionActor, _Channel, dict[str, Any]], Awaitable[None]]]
] = {
    "conversation": _after_conversation_join,
    "user": _after_user_join,
    "notification": _release_only,
}


# -- topics: pushes ---------------------------------------------------------------------------


async def _send_message(
    actor: ConnectionActor, channel: _Channel, p: ev.SendMessage, _event: str
) -> dict[str, Any]:
    await actor.ctx.limiter.check(actor.user_id)
    draft = Draft(
        client_id=p.client_id,
        kind=p.kind,
        content=p.content,
        attachments=p.attachments,
        reply_to=p.reply_to,
        metadata=p.metadata,
    )
    message = await actor.ctx.messaging.send(actor.user_id, channel.target, draft)
    return {"id": message.id, "seq": message.seq, "created_at": message.created_at}


async def _edit(
    actor: ConnectionActor, channel: _Channel, p: ev.EditMessage, _event: str
) -> dict[str, Any]:
    message = await actor.ctx.messaging.edit(actor.user_id, channel.target, p.seq, p.content)
    return {"seq": message.seq, "edited_at": message.edited_at}


async def _delete(
    actor: ConnectionActor, channel: _Channel, p: ev.DeleteMessage, _event: str
) -> dict[str, Any]:
    if p.for_everyone:
        await actor.ctx.messaging.delete(actor.user_id, channel.target, p.seq)
    else:
        await actor.ctx.messaging.hide(actor.user_id, channel.target, p.seq)
    return {"seq": p.seq, "for_everyone": p.for_everyone}


async def _react(
    actor: ConnectionActor, channel: _Channel, p: ev.React, _event: str
) -> dict[str, Any]:
    message = await actor.ctx.messaging.react(
        actor.user_id, channel.target, p.seq, p.emoji, add=not p.remove
    )
    return {"seq": message.seq, "reactions": msgspec.to_builtins(message.reactions)}


async def _pin(
    actor: ConnectionActor, channel: _Channel, p: ev.PinMessage, _event: str
) -> dict[str, Any]:
    message = await actor.ctx.messaging.pin(actor.user_id, channel.target, p.seq, pinned=p.pinned)
    return {"seq": message.seq, "pinned": message.pinned}


async def _mark(
    actor: ConnectionActor, channel: _Channel, p: ev.MarkCursor, event: str
) -> dict[str, Any]:
    messaging = actor.ctx.messaging
    if event == "mark_read":
        cursor = await messaging.mark_read(actor.user_id, channel.target, p.seq)
    else:
        cursor = await messaging.mark_delivered(
            actor.user_id, actor.identity.device_id, channel.target, p.seq
        )
    return {"seq": cursor}


async def _typing(
    actor: ConnectionActor, channel: _Channel, _p: ev.Typing, event: str
) -> dict[str, Any]:
    payload = {
        "user_id": actor.user_id,
        "device_id": actor.identity.device_id,
        "typing": event == "typing_start",
    }
    actor.ctx.broker.publish(channel.topic, encode_event("user_typing", payload))
    return {}


async def _history(
    actor: ConnectionActor, channel: _Channel, p: ev.History, _event: str
) -> dict[str, Any]:
    messages = await actor.ctx.messaging.history(
        actor.user_id, channel.target, before_seq=p.before_seq, after_seq=p.after_seq, limit=p.limit
    )
    return {"messages": msgspec.to_builtins(messages)}


async def _create_conversation(
    actor: ConnectionActor, _channel: _Channel, p: ev.CreateConversation, _event: str
) -> dict[str, Any]:
    messaging = actor.ctx.messaging
    if p.kind == "direct":
        if not p.with_user:
            raise WhisprError(Reason.INVALID, "a direct conversation needs with_user")
        conversation = await messaging.direct(actor.user_id, p.with_user)
    else:
        conversation = await messaging.create_group(actor.user_id, p.title, p.members)
    return {"conversation": msgspec.to_builtins(conversation)}


async def _list_conversations(
    actor: ConnectionActor, _channel: _Channel, p: ev.ListConversations, _event: str
) -> dict[str, Any]:
    summaries = await actor.ctx.messaging.list_conversations(
        actor.user_id, limit=p.limit, before=p.before, before_id=p.before_id
    )
    return {"conversations": msgspec.to_builtins(summaries)}


_PUSHES: Final[dict[str, Handler]] = {
    "send_message": _send_message,
    "edit_message": _edit,
    "delete_message": _delete,
    "react": _react,
    "pin": _pin,
    "mark_read": _mark,
    "mark_delivered": _mark,
    "typing_start": _typing,
    "typing_stop": _typing,
    "history": _history,
    "create_conversation": _create_conversation,
    "list_conversations": _list_conversations,
}
