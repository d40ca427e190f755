"""``ConnectionActor``: one client connection, its channels and its outbound queue.

The connection's wire is a :class:`~whispr.gateway.transport.Transport`: a WebSocket, or a
Phoenix long-poll session (whispr/gateway/longpoll.py); everything above it (protocol,
channels, limits, catch-up) is the same for both. The transport's reader (the gateway's
handler task, or a long-poll POST) tells the actor each message it receives;
the actor runs the Phoenix protocol core (:class:`~whispr.protocol.ConnectionProtocol`) and
handles joins and pushes in order, like a Phoenix channel process, so replies keep the order
of the pushes. Only consecutive pushes that their channel pipelines (``send_message``) overlap
(see "pipelined sends"): they still commit and are answered in order, and anything else waits
for them.

Backpressure, both ways:

- in: the reader takes a credit before telling the actor a message and the actor returns it
  once handled, so a client pushing faster than it is served stops being read (TCP pushes
  back) instead of filling the mailbox;
- out: frames are handed to the transport at the end of the loop turn that sent them (one
  write per turn and socket); a client that does not read (or poll) makes what it has not
  read grow past ``outbound_buffer_bytes`` and is disconnected with 1013 (try again later); it
  reconnects and catches up from the store, so nothing is lost, and memory stays bounded.

What a topic does is its channel's business (:mod:`whispr.gateway.channels`, one class per
kind: join, handle_in, handle_out); this actor does socket I/O, backpressure and routing:
a join goes to a new instance of the topic's kind, a push to the joined instance, a leave
ends it. Broker events do not go through the mailbox: the broker calls each channel's
subscriber synchronously on the event loop, which is this actor's thread, so the handler
cannot interleave with the actor's own code; queueing them behind a push that awaits its
commit would only add latency.

A failure in a channel's handler crashes that channel only (``phx_error``; the client rejoins);
a failure of the actor itself closes the socket with 1011.

Each push and each join is a span (``push <event>``, ``join <kind>``), from its handling to its
reply (a join's also covers its catch-up): the root of a message's trace. A sampled one is made
the current span while it is handled, so the calls it makes carry it (``actors/tracing.py``);
an unsampled one costs the sampling decision and nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Final

import msgspec
import structlog
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from actors.errors import WhisprError
from actors.tracing import TRACER, span_context
from supervisors import AsyncioActor
from whispr.audit import AuditKind
from whispr.auth import Identity
from whispr.gateway.channels import CHANNELS, TOPIC_PREFIXES, Channel
from whispr.gateway.context import GatewayContext
from whispr.gateway.limits import PHX_JOIN
from whispr.gateway.refresh import REFRESH_TOKEN, refreshed_identity
from whispr.gateway.transport import Transport
from whispr.protocol import (
    CloseCode,
    ConnectionProtocol,
    JoinRequested,
    LeaveRequested,
    ProtocolViolation,
    PushReceived,
    SocketPushReceived,
)

__all__ = ["TOPIC_PREFIXES", "ConnectionActor", "Inbound", "Tick"]

log = structlog.get_logger("whispr.gateway")

#: Seconds a catch-up may wait for a client to read before the connection is dropped.
CATCHUP_SEND_TIMEOUT_S: Final = 30.0
#: Catch-up frames queued before they are written (and the client's reading is checked).
CATCHUP_WRITE_BYTES: Final = 64 * 1024


class Inbound(msgspec.Struct, frozen=True, gc=False):
    """A message from the client (``str`` text, ``bytes`` binary)."""

    data: str | bytes


class Tick(msgspec.Struct, frozen=True, gc=False):
    """Periodic check: heartbeat timeout, token expiry."""

    now: float


class ConnectionActor(AsyncioActor):
    """One client connection; see the module's docstring."""

    def __init__(
        self,
        ctx: GatewayContext,
        transport: Transport,
        identity: Identity,
        credits: asyncio.Semaphore,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.transport = transport
        #: The transport's name in the audit log (the abuse watch's ``Suspect``).
        self.source = transport.source
        self.identity = identity
        self.user_id = identity.user_id
        settings = ctx.settings
        self.proto = ConnectionProtocol(
            max_size=settings.max_frame_bytes,
            heartbeat_timeout=settings.heartbeat_timeout_s,
            topic_prefixes=TOPIC_PREFIXES,
            socket_events=(REFRESH_TOKEN,),
        )
        #: Taken by the reader per message told, returned here once it is handled.
        self.credits = credits
        self._buffer_limit = settings.outbound_buffer_bytes
        #: Frames sent and received since the last tick (added to the metrics in bulk: an
        #: OpenTelemetry ``add`` per frame costs more than writing the frame).
        self.sent = 0
        self.received = 0
        self._channels: dict[str, Channel] = {}
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
        self.ctx.presence.device_connected(self.user_id)
        self.ctx.sessions.add(self)

    async def on_stop(self) -> None:
        await self._teardown()

    async def on_failure(self, *_exc_info: Any) -> None:
        self._log.error("connection actor crashed", exc_info=_exc_info)
        self.close(CloseCode.INTERNAL_ERROR, "internal error")
        await self._teardown()

    async def _teardown(self) -> None:
        self.ctx.presence.device_disconnected(self.user_id)
        self.ctx.sessions.discard(self)
        self.proto.connection_closed()
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
            if self._closing or self._token_expired():
                self.credits.release()
                return None
            events = self._parse(message.data)
            if len(events) == 1 and self._pipelined(events[0]):
                self._start_send(events[0])  # its credit comes back when it is answered
                return None
            return self._inbound(events)
        if isinstance(message, Tick):
            self._count_frames()
            if self.proto.tick(message.now) and not self.transport.alive(message.now):
                self.close(CloseCode.GOING_AWAY, "heartbeat timeout")
            else:
                self._token_expired()
        return None

    def _token_expired(self) -> bool:
        """Close with 1008 once the token has expired: nothing is taken from the client after.

        Checked at every tick (a silent connection goes within one tick interval of its
        expiry) and before every frame (one float compare), so no push after the expiry
        is handled, however soon after it arrives.
        """
        if self.identity.expires_at > time.time():
            return False
        if not self._closing:
            self.ctx.audit.record(
                AuditKind.TOKEN_REFUSED,
                user_id=self.user_id,
                reason="token expired",
                source=self.source,
                peer=self._peer,
                device_id=self.identity.device_id,
                on="open connection",
            )
        self.close(CloseCode.POLICY_VIOLATION, "token expired")
        return True

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
        if not isinstance(event, PushReceived):
            return False
        channel = self._channels.get(event.topic)
        return channel is not None and channel.pipelined(event.event)

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
            elif isinstance(event, SocketPushReceived):
                await self._refresh_token(event)

    # -- sending --------------------------------------------------------------------------

    def send(self, data: bytes | None) -> None:
        """Queue one frame for the transport; it is handed over at the end of this loop turn.

        Frames go straight to the transport (a WebSocket's sans-I/O protocol), with no task
        switch: this is the hot path of every delivery. The bytes reach the wire once per
        loop turn and connection (one ``writelines``, one system call): a send's reply and
        its broadcast to the sender, answered in the same turn, cost one write instead of
        two. A client that reads slower than it is sent to makes what it has not read grow;
        past ``outbound_buffer_bytes`` it is closed with 1013 (it reconnects and catches up
        from the store), so memory stays bounded.
        """
        if data is None or self._closing:
            return
        try:
            self.transport.queue(data)
        except Exception:  # the transport is closing: its reader ends and stops this actor
            return
        self.sent += 1
        self._queued_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Hand this turn's frames to the transport at once; disconnect a client that lags."""
        self._flush_scheduled = False
        self._queued_bytes = 0
        try:
            unread = self.transport.flush()
        except Exception:  # the transport is closing: its reader ends and stops this actor
            return
        if unread > self._buffer_limit:
            self.ctx.metrics.errors.add(1, {"reason": "slow_client"})
            self._log.info("client too slow; disconnecting", buffered=unread)
            self.close(CloseCode.TRY_AGAIN_LATER, "client too slow")

    async def send_waiting(self, data: bytes | None) -> None:
        """Send one frame, first waiting for the client to read (catch-up pages)."""
        if data is None or self._closing:
            return
        if self.transport.unread() > self._buffer_limit // 2:
            try:
                await asyncio.wait_for(self.transport.drain(), CATCHUP_SEND_TIMEOUT_S)
            except TimeoutError:
                self.close(CloseCode.TRY_AGAIN_LATER, "client too slow")
                return
            except Exception:
                return
        self.send(data)
        if self._queued_bytes > min(CATCHUP_WRITE_BYTES, self._buffer_limit // 4):
            self._flush()  # now, so that the next frame's wait sees these in the buffer

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside this actor's messages, kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self, code: int, reason: str) -> None:
        """Close the socket (once); the reader then ends and stops this actor."""
        if self._closing:
            return
        if self._flush_scheduled:
            self._flush()  # frames queued before the close go before it
            if self._closing:
                return
        self._closing = True
        self.in_background(self.transport.close(code, reason))

    # -- routing --------------------------------------------------------------------------

    async def _join(self, join: JoinRequested) -> None:
        kind = join.topic.partition(":")[0]
        span = TRACER.start_span(f"join {kind}", kind=SpanKind.SERVER)
        if not span.is_recording():
            await self._join_channel(join, span)
            return
        span.set_attribute("whispr.topic", join.topic)
        token = otel_context.attach(span_context(span))
        try:
            await self._join_channel(join, span)
        finally:
            otel_context.detach(token)
            span.end()

    async def _join_channel(self, join: JoinRequested, span: Span) -> None:
        kind, _, target = join.topic.partition(":")
        metrics = self.ctx.metrics
        channel = CHANNELS[kind](self, join.topic, target, join.join_ref)
        self._channels[join.topic] = channel
        try:
            await self.ctx.limits.check(self.user_id, kind, PHX_JOIN)
            await self.ctx.abuse.observe(self, kind, PHX_JOIN, target)
            response = await channel.join(join.payload)
        except WhisprError as exc:
            metrics.joins.add(1, {"kind": kind, "outcome": str(exc.reason)})
            span.set_status(Status(StatusCode.ERROR, str(exc.reason)))
            self._refused(exc, join.topic, "phx_join")
            self._forget(channel)
            self.send(self.proto.reject_join(join.topic, exc, join_ref=join.join_ref))
            return
        except Exception:
            self._log.exception("join crashed", topic=join.topic)
            metrics.joins.add(1, {"kind": kind, "outcome": "crashed"})
            self._forget(channel)
            self.send(self.proto.channel_crashed(join.topic, join_ref=join.join_ref))
            return
        if not self.is_current(channel):
            return  # left or rejoined meanwhile: _end dropped it
        reply = self.proto.accept_join(join.topic, response, join_ref=join.join_ref)
        if reply is None:
            self._forget(channel)
            return
        metrics.joins.add(1, {"kind": kind, "outcome": "ok"})
        self.send(reply)
        span.add_event("joined")  # what follows is the catch-up
        try:
            await channel.after_join()
        except Exception:
            self._log.exception("channel crashed after join", topic=join.topic)
            await self._crash_channel(channel)

    async def _push(self, push: PushReceived) -> None:
        channel = self._channels.get(push.topic)
        if channel is None or channel.join_ref != push.join_ref:
            return
        # Unknown events share one label: a client cannot grow the metric's series or the
        # spans' names.
        event = push.event if channel.handles(push.event) else "unknown"
        span = TRACER.start_span(f"push {event}", kind=SpanKind.SERVER)
        if not span.is_recording():
            await self._handle_push(channel, push, event, span)
            return
        span.set_attribute("whispr.topic", push.topic)
        token = otel_context.attach(span_context(span))
        try:
            await self._handle_push(channel, push, event, span)
        finally:
            otel_context.detach(token)
            span.end()  # the ack is queued: it goes out at the end of this loop turn

    async def _handle_push(
        self, channel: Channel, push: PushReceived, event: str, span: Span
    ) -> None:
        metrics = self.ctx.metrics
        began = time.perf_counter()
        try:
            response = await channel.handle_in(push.event, push.payload)
        except WhisprError as exc:
            metrics.errors.add(1, {"reason": str(exc.reason)})
            span.set_status(Status(StatusCode.ERROR, str(exc.reason)))
            self._refused(exc, push.topic, push.event)
            if push.ref is not None:
                self.send(
                    self.proto.reply(push.topic, push.ref, "error", exc, join_ref=push.join_ref)
                )
            return
        except Exception as exc:
            self._log.exception("channel crashed", topic=push.topic, push_event=push.event)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            await self._crash_channel(channel)
            return
        finally:
            metrics.push_latency.record(time.perf_counter() - began, event)
        if push.ref is not None:
            self.send(
                self.proto.reply(push.topic, push.ref, "ok", response or {}, join_ref=push.join_ref)
            )

    async def _refresh_token(self, push: SocketPushReceived) -> None:
        """``refresh_token`` on ``phoenix``: a fresh token moves this connection's expiry
        (whispr/gateway/refresh.py); a bad one is refused and changes nothing."""
        try:
            self.identity = await refreshed_identity(self.ctx.verifier, self.identity, push.payload)
        except WhisprError as exc:
            self._refused(exc, "phoenix", push.event)
            self.send(self.proto.socket_reply(push.ref, "error", exc))
            return
        reply = {"expires_at": self.identity.expires_at}
        self.send(self.proto.socket_reply(push.ref, "ok", reply))

    @property
    def _peer(self) -> str | None:
        """The client's address (read when needed: refusals are rare)."""
        return self.transport.peer

    def _refused(self, error: WhisprError, topic: str, event: str) -> None:
        """Tell the audit log of a refusal sent to this client (it keeps the security ones)."""
        self.ctx.audit.refused(
            error,
            source=self.source,
            user_id=self.user_id,
            peer=self._peer,
            device_id=self.identity.device_id,
            topic=topic,
            event=event,
        )
        self.in_background(self.ctx.abuse.refused(self, error, event))

    async def _crash_channel(self, channel: Channel) -> None:
        self.ctx.metrics.errors.add(1, {"reason": "channel_crash"})
        self.send(self.proto.channel_crashed(channel.topic, join_ref=channel.join_ref))
        await self._end(channel.topic, channel.join_ref)

    # -- ends -----------------------------------------------------------------------------

    def is_current(self, channel: Channel) -> bool:
        """Whether ``channel`` is still this connection's instance of its topic."""
        return self._channels.get(channel.topic) is channel

    def end_channel(self, channel: Channel) -> None:
        """End ``channel`` for good, from inside it (removed from a conversation)."""
        if self._forget(channel):
            self.in_background(channel.leave())

    def _forget(self, channel: Channel) -> bool:
        """Stop ``channel``'s deliveries and forget it; whether it was the current one."""
        current = self.is_current(channel)
        if current:
            del self._channels[channel.topic]
        channel.drop()
        return current

    async def _end(self, topic: str, join_ref: str | None = None) -> None:
        channel = self._channels.get(topic)
        if channel is None or (join_ref is not None and channel.join_ref != join_ref):
            return
        self._forget(channel)
        await channel.leave()
