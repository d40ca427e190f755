"""The per-connection channel state machine of Phoenix Channels V2, with no I/O.

Modelled on websockets' ``Protocol``: the gateway feeds every WebSocket message it receives to
:meth:`ConnectionProtocol.receive_data`, then takes :meth:`~ConnectionProtocol.data_to_send`
(frames the core answered by itself: heartbeat replies, ``unmatched topic`` errors, leave
replies, ``phx_close``) and :meth:`~ConnectionProtocol.events_received` (decisions for the
application). Send the data first, then handle the events: everything in ``data_to_send`` answers
the frames just received, and nothing the application will answer can need to precede it.

The application answers with methods that *return* the bytes to send (:meth:`accept_join`,
:meth:`reject_join`, :meth:`reply`, :meth:`push`, :meth:`broadcast`, :meth:`channel_crashed`,
:meth:`close_channel`), or ``None`` when the answer no longer applies (the client left, or
rejoined with a new ``join_ref``, or the protocol is closed): then there is nothing to send, and
the application should drop whatever it set up for that channel instance.

Channel instances. A channel is identified by ``(topic, join_ref)``: the client's rejoin after a
crash or a reconnect is a new instance with a new ``join_ref``. Every :class:`JoinRequested`
starts one; it ends exactly once, by :meth:`reject_join`, :meth:`channel_crashed`,
:meth:`close_channel`, a :class:`LeaveRequested` (client leave or duplicate join), or
:meth:`connection_closed`. Pass ``join_ref`` to the answer methods so that a late answer for a
previous instance is dropped instead of landing on the new one.

What Phoenix does (``Phoenix.Socket.handle_in``) and this class copies:

- ``heartbeat`` on topic ``phoenix``: ok reply, empty response, ``join_ref`` null;
  other ``phoenix`` events the application declares (``socket_events``: Whispr's
  ``refresh_token``) become :class:`SocketPushReceived`, answered by :meth:`socket_reply`;
- a push to a topic not joined: error reply ``{"reason": "unmatched topic"}``, ``join_ref``
  null; a ``phx_leave`` of a topic not joined: ok reply;
- a push or leave whose ``join_ref`` is set and stale (an earlier instance): ignored, no reply
  (the client raced a close; phoenix.js would drop the reply anyway);
- a second ``phx_join`` of a joined topic: ``phx_close`` to the old instance, then the join;
- ``phx_leave``: ok reply, then ``phx_close``;
- joins beyond the limit: error reply ``{"reason": "too many channels joined"}``;
- a crashed joined channel: ``phx_error`` ``{"reason": "channel_crash"}``; a crashed join: error
  reply ``{"reason": "join crashed"}``.

Where it differs, because joins here are asynchronous (Phoenix blocks the socket during a
join): a push to a topic still *joining* gets ``unmatched topic`` (phoenix.js buffers pushes
until the join succeeds, so only other clients see this); a duplicate join or a leave while
joining ends the pending instance with no reply to its join (the client has reset that push).
There is no "leaving" state: a leave completes at once (reply, ``phx_close``,
:class:`LeaveRequested`), since phoenix.js removes the channel on that reply and would drop
anything sent to the instance afterwards; an application that handles a connection's pushes one
at a time, as a Phoenix channel process does, still answers them before the leave is read.

Liveness. Any message received counts as a sign of life; :meth:`tick` says when none arrived
for ``heartbeat_timeout`` seconds (clients send a heartbeat every 30 s; default timeout 90 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

import msgspec

from whispr.protocol import frames
from whispr.protocol.frames import (
    HEARTBEAT,
    PHOENIX_TOPIC,
    PHX_CLOSE,
    PHX_ERROR,
    PHX_JOIN,
    PHX_LEAVE,
    PHX_REPLY,
    BinaryFrame,
    BinaryPayload,
    CloseCode,
    Frame,
    Payload,
    ProtocolError,
    Reason,
    Status,
)

__all__ = [
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_MAX_TOPICS",
    "ChannelState",
    "ConnectionProtocol",
    "Event",
    "JoinRequested",
    "LeaveCause",
    "LeaveRequested",
    "ProtocolViolation",
    "PushReceived",
    "Response",
    "SocketPushReceived",
    "SupportsPayload",
    "error_response",
]

DEFAULT_MAX_TOPICS: Final = 100
DEFAULT_HEARTBEAT_TIMEOUT: Final = 90.0

#: Longest close reason a WebSocket close frame can carry, in bytes (RFC 6455 section 5.5).
_MAX_CLOSE_REASON: Final = 123
#: Events only the server sends; a client pushing one gets an ``invalid`` error reply.
_SERVER_EVENTS: Final = frozenset({PHX_REPLY, PHX_ERROR, PHX_CLOSE})

ChannelState: TypeAlias = Literal["joining", "joined"]
LeaveCause: TypeAlias = Literal["leave", "rejoin", "disconnect"]


@runtime_checkable
class SupportsPayload(Protocol):
    """An application error that knows its reply payload (``actors.errors.WhisprError``)."""

    def to_payload(self) -> dict[str, Any]:
        """The ``response`` object of the error reply: ``{"reason": ..., ...}``."""
        ...


#: What the answer methods accept as a reply's ``response``.
Response: TypeAlias = Payload | SupportsPayload


def error_response(reason: str, message: str | None = None, **details: Any) -> dict[str, Any]:
    """An error ``response``: ``{"reason": reason, "message": message, **details}``.

    ``reason`` is machine-readable (a :class:`~whispr.protocol.frames.Reason` or a reason from
    the application's catalogue, both ``str`` enums); ``message``, for people, is left out when
    ``None``.
    """
    response: dict[str, Any] = {"reason": str(reason)}
    if message is not None:
        response["message"] = message
    response.update(details)
    return response


class JoinRequested(msgspec.Struct, frozen=True, gc=False):
    """The client asks to join ``topic``: authorise, then :meth:`~ConnectionProtocol.accept_join`
    or :meth:`~ConnectionProtocol.reject_join` with this ``join_ref``."""

    topic: str
    join_ref: str
    ref: str | None
    payload: dict[str, Any]


class PushReceived(msgspec.Struct, frozen=True, gc=False):
    """A client push on a joined topic; answer with :meth:`~ConnectionProtocol.reply` when
    ``ref`` is set. ``payload`` is ``bytes`` for a binary push."""

    topic: str
    event: str
    ref: str | None
    join_ref: str
    payload: dict[str, Any] | bytes


class SocketPushReceived(msgspec.Struct, frozen=True, gc=False):
    """A push on the ``phoenix`` topic itself (the socket, not a channel) of an event the
    application declared in ``socket_events``; answer with
    :meth:`~ConnectionProtocol.socket_reply` when ``ref`` is set."""

    event: str
    ref: str | None
    payload: dict[str, Any] | bytes


class LeaveRequested(msgspec.Struct, frozen=True, gc=False):
    """The channel instance ``(topic, join_ref)`` is over: drop its subscriptions.

    The core has already answered the client. ``cause`` is ``"leave"`` (a ``phx_leave``, whose
    ``ref`` this is), ``"rejoin"`` (a duplicate join of the topic; its :class:`JoinRequested`
    follows) or ``"disconnect"`` (from :meth:`~ConnectionProtocol.connection_closed`).
    """

    topic: str
    join_ref: str
    ref: str | None
    cause: LeaveCause


class ProtocolViolation(msgspec.Struct, frozen=True, gc=False):
    """A message that cannot be answered in band: close the WebSocket with ``code``.

    ``message`` never echoes the input, so it is safe to log, and it fits a WebSocket close
    reason (at most 123 bytes of UTF-8): ``await ws.close(v.code, v.message)``.
    """

    reason: Reason
    message: str
    code: CloseCode


Event: TypeAlias = (
    JoinRequested | PushReceived | LeaveRequested | ProtocolViolation | SocketPushReceived
)


@dataclass(slots=True)
class _Channel:
    join_ref: str
    join_msg_ref: str | None  # the ref of the phx_join, answered by accept/reject_join
    state: ChannelState


def _response(response: Response) -> Payload:
    if type(response) is dict or isinstance(response, dict | msgspec.Struct | msgspec.Raw):
        return response
    if isinstance(response, SupportsPayload):
        return response.to_payload()
    raise TypeError(f"cannot use {type(response).__name__} as a reply response")


class ConnectionProtocol:
    """Phoenix Channels V2 for one WebSocket connection: messages in; events and bytes out.

    Not thread-safe: one instance per connection, driven by the one task (or actor) that owns
    the connection. After a :class:`ProtocolViolation` or :meth:`connection_closed`, input is
    ignored and every answer method returns ``None``.

    :param max_size: largest message accepted, in bytes; larger ones close with 1009.
    :param max_topics: most channels joined or joining at once (Phoenix's
        ``max_channels_per_transport``, default 100 there too).
    :param heartbeat_timeout: seconds of silence after which :meth:`tick` reports a timeout.
    :param topic_prefixes: when given, a join to a topic starting with none of them gets
        ``unmatched topic`` without reaching the application (Phoenix's channel routes).
    :param accept_binary: whether binary pushes are accepted; if not, a binary message closes
        the connection with 1003.
    :param clock: monotonic time source read when a message is received.
    :param socket_events: events on the ``phoenix`` topic, besides ``heartbeat``, that the
        application answers (:class:`SocketPushReceived`); any other gets ``unmatched topic``.
    """

    def __init__(
        self,
        *,
        max_size: int = frames.DEFAULT_MAX_SIZE,
        max_topics: int = DEFAULT_MAX_TOPICS,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        topic_prefixes: Collection[str] | None = None,
        accept_binary: bool = True,
        clock: Callable[[], float] = time.monotonic,
        socket_events: Collection[str] = (),
    ) -> None:
        self.max_size = max_size
        self.max_topics = max_topics
        self.heartbeat_timeout = heartbeat_timeout
        self._prefixes = None if topic_prefixes is None else tuple(topic_prefixes)
        self.accept_binary = accept_binary
        self._clock = clock
        self._socket_events = frozenset(socket_events)
        self._channels: dict[str, _Channel] = {}
        self._events: list[Event] = []
        self._out: list[bytes] = []
        #: When the last message was received (``clock`` time).
        self.last_seen: float = clock()
        #: Whether the protocol is over (violation, or :meth:`connection_closed`).
        self.closed = False

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes | str, *, binary: bool = False) -> None:
        """Handle one WebSocket message; ``binary`` says it arrived in a binary frame.

        Never raises: undecodable input becomes a :class:`ProtocolViolation` (and the protocol
        closes), except an invalid frame whose ``ref`` and ``topic`` could still be read, which
        gets an ``invalid`` error reply and changes nothing else.
        """
        if self.closed:
            return
        self.last_seen = self._clock()
        frame: Frame | BinaryFrame
        try:
            if not binary:
                frame = frames.decode(data, max_size=self.max_size)
            elif self.accept_binary and not isinstance(data, str):
                frame = frames.decode_binary(data, max_size=self.max_size)
            else:
                raise ProtocolError(Reason.UNSUPPORTED, "binary messages are not accepted")
        except ProtocolError as exc:
            if exc.answerable and exc.reason is Reason.INVALID:
                self._error_reply(exc.join_ref, exc.ref, exc.topic or "", exc.message)
            else:
                self._violation(exc.reason, exc.message, exc.close_code)
            return
        self._handle(frame)

    def events_received(self) -> list[Event]:
        """The events produced since the last call, in order (the list is handed over)."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """The frames the core produced since the last call, in order; send each as one
        message (:func:`~whispr.protocol.frames.is_binary` gives its opcode)."""
        out, self._out = self._out, []
        return out

    def tick(self, now: float) -> bool:
        """Whether nothing was received for more than ``heartbeat_timeout`` before ``now``.

        The gateway then closes with 1001 (going away: phoenix.js reconnects after any code but
        1000, which is what a client that merely lost its network should do).
        """
        return now - self.last_seen > self.heartbeat_timeout

    def connection_closed(self) -> list[LeaveRequested]:
        """The socket is gone: close the protocol, and end every channel instance.

        Returns one ``LeaveRequested(cause="disconnect")`` per joined or joining topic, so the
        application tears down channels the same way whatever ended them.
        """
        self.closed = True
        ended = [
            LeaveRequested(topic, channel.join_ref, None, "disconnect")
            for topic, channel in self._channels.items()
        ]
        self._channels.clear()
        return ended

    def _handle(self, frame: Frame | BinaryFrame) -> None:
        topic, event = frame.topic, frame.event
        if event == HEARTBEAT and topic == PHOENIX_TOPIC:
            self._out.append(frames.heartbeat_reply(frame.ref))
            return
        if topic == PHOENIX_TOPIC and event in self._socket_events:
            self._events.append(SocketPushReceived(event, frame.ref, frame.payload))
            return
        if event == PHX_JOIN:
            self._join(frame)
            return
        channel = self._channels.get(topic)
        if event == PHX_LEAVE:
            self._leave(frame, channel)
            return
        if channel is None or channel.state != "joined":
            self._out.append(_unmatched(frame.ref, topic))
            return
        if frame.join_ref is not None and frame.join_ref != channel.join_ref:
            return  # stale instance: Phoenix ignores it
        if event in _SERVER_EVENTS:
            self._error_reply(channel.join_ref, frame.ref, topic, f"{event} is a server event")
            return
        self._events.append(PushReceived(topic, event, frame.ref, channel.join_ref, frame.payload))

    def _join(self, frame: Frame | BinaryFrame) -> None:
        topic = frame.topic
        join_ref = frame.join_ref if frame.join_ref is not None else frame.ref
        if join_ref is None or isinstance(frame.payload, bytes):
            why = "phx_join needs a ref" if join_ref is None else "phx_join payload must be JSON"
            self._error_reply(frame.join_ref, frame.ref, topic, why)
            return
        if topic == PHOENIX_TOPIC or (
            self._prefixes is not None and not topic.startswith(self._prefixes)
        ):
            self._out.append(_unmatched(frame.ref, topic))
            return
        old = self._channels.pop(topic, None)
        if old is not None:
            if old.state == "joined":
                self._out.append(frames.close(old.join_ref, topic))
            self._events.append(LeaveRequested(topic, old.join_ref, None, "rejoin"))
        elif len(self._channels) >= self.max_topics:
            response = error_response(
                Reason.TOO_MANY_CHANNELS, f"at most {self.max_topics} topics per connection"
            )
            self._out.append(frames.reply(join_ref, frame.ref, topic, "error", response))
            return
        self._channels[topic] = _Channel(join_ref, frame.ref, "joining")
        self._events.append(JoinRequested(topic, join_ref, frame.ref, frame.payload))

    def _leave(self, frame: Frame | BinaryFrame, channel: _Channel | None) -> None:
        topic = frame.topic
        if channel is None:  # nothing to leave: Phoenix still says ok
            self._out.append(frames.reply(frame.join_ref, frame.ref, topic, "ok", {}))
            return
        if frame.join_ref is not None and frame.join_ref != channel.join_ref:
            return  # stale instance: the client raced a close
        del self._channels[topic]
        self._out.append(frames.reply(channel.join_ref, frame.ref, topic, "ok", {}))
        self._out.append(frames.close(channel.join_ref, topic))
        self._events.append(LeaveRequested(topic, channel.join_ref, frame.ref, "leave"))

    def _error_reply(self, join_ref: str | None, ref: str | None, topic: str, message: str) -> None:
        response = error_response(Reason.INVALID, message)
        self._out.append(frames.reply(join_ref, ref, topic, "error", response))

    def _violation(self, reason: Reason, message: str, code: CloseCode) -> None:
        self.closed = True
        reason_text = message.encode("utf-8")[:_MAX_CLOSE_REASON].decode("utf-8", "ignore")
        self._events.append(ProtocolViolation(reason, reason_text, code))

    # -- answers from the application ---------------------------------------------------------

    def _instance(self, topic: str, join_ref: str | None, state: ChannelState) -> _Channel | None:
        if self.closed:
            return None
        channel = self._channels.get(topic)
        if channel is None or channel.state != state:
            return None
        if join_ref is not None and join_ref != channel.join_ref:
            return None
        return channel

    def accept_join(
        self, topic: str, response: Response | None = None, *, join_ref: str | None = None
    ) -> bytes | None:
        """Accept the pending join of ``topic``: the ok reply, or ``None`` if none is pending.

        Subscribe before sending the reply (so nothing published after the reply is missed),
        and undo the subscription if this returns ``None``.
        """
        channel = self._instance(topic, join_ref, "joining")
        if channel is None:
            return None
        payload = {} if response is None else _response(response)
        data = frames.reply(channel.join_ref, channel.join_msg_ref, topic, "ok", payload)
        channel.state = "joined"
        return data

    def reject_join(
        self, topic: str, response: Response | str, *, join_ref: str | None = None
    ) -> bytes | None:
        """Refuse the pending join: the error reply (the topic is forgotten), or ``None``.

        ``response`` may be a bare reason (``reject_join(t, "forbidden")`` sends
        ``{"reason": "forbidden"}``), an application error with ``to_payload()``, or a payload.
        phoenix.js retries a refused join with backoff, as for any join error.
        """
        channel = self._instance(topic, join_ref, "joining")
        if channel is None:
            return None
        payload = error_response(response) if isinstance(response, str) else _response(response)
        data = frames.reply(channel.join_ref, channel.join_msg_ref, topic, "error", payload)
        del self._channels[topic]
        return data

    def reply(
        self,
        topic: str,
        ref: str | None,
        status: Status,
        response: Response | BinaryPayload,
        *,
        join_ref: str | None = None,
    ) -> bytes | None:
        """Reply to push ``ref`` on a joined topic, or ``None`` if that channel instance is
        gone (the client left or rejoined: it would drop the reply anyway).

        Binary ``response`` bytes make a binary reply.
        """
        channel = self._instance(topic, join_ref, "joined")
        if channel is None:
            return None
        if type(response) is not dict and not isinstance(response, bytes | bytearray | memoryview):
            response = _response(response)
        return frames.reply(channel.join_ref, ref, topic, status, response)

    def socket_reply(self, ref: str | None, status: Status, response: Response) -> bytes | None:
        """Reply to a :class:`SocketPushReceived` ``ref`` (on ``phoenix``, ``join_ref`` null),
        or ``None`` if there is nothing to answer (no ``ref``, or the protocol is closed)."""
        if self.closed or ref is None:
            return None
        return frames.reply(None, ref, PHOENIX_TOPIC, status, _response(response))

    def push(
        self,
        topic: str,
        event: str,
        payload: Payload | BinaryPayload,
        *,
        join_ref: str | None = None,
    ) -> bytes | None:
        """A server push to this connection's channel on ``topic`` (``None`` if not joined).

        For the same event to many subscribers, use :meth:`broadcast` with bytes encoded once.
        """
        channel = self._instance(topic, join_ref, "joined")
        if channel is None:
            return None
        return frames.push(topic, event, payload, channel.join_ref)

    def broadcast(self, topic: str, encoded: bytes) -> bytes | None:
        """``encoded`` (from :func:`~whispr.protocol.frames.encode_broadcast`) if ``topic`` is
        joined here, else ``None``.

        Broadcasts carry a null ``join_ref``, which phoenix.js accepts for any instance of the
        topic, including one still joining; this check keeps them to joined channels, as
        Phoenix only delivers them to subscribed (joined) channels.
        """
        if self._instance(topic, None, "joined") is None:
            return None
        return encoded

    def channel_crashed(self, topic: str, *, join_ref: str | None = None) -> bytes | None:
        """The application's handler for ``topic`` failed: forget the channel instance and tell
        the client, which rejoins with a new ``join_ref`` after its backoff.

        Joined: ``phx_error`` ``{"reason": "channel_crash"}``. Joining: an error reply to the
        join, ``{"reason": "join crashed"}``, as Phoenix. ``None`` if there is no such instance.
        """
        if self.closed:
            return None
        channel = self._channels.get(topic)
        if channel is None or (join_ref is not None and join_ref != channel.join_ref):
            return None
        del self._channels[topic]
        if channel.state == "joining":
            response = error_response(Reason.JOIN_CRASHED)
            return frames.reply(channel.join_ref, channel.join_msg_ref, topic, "error", response)
        return frames.error(channel.join_ref, topic)

    def close_channel(self, topic: str, *, join_ref: str | None = None) -> bytes | None:
        """The server ends a joined channel for good (e.g. the user was removed from the
        conversation): ``phx_close``, after which phoenix.js does not rejoin.

        ``None`` if not joined (refuse a pending join with :meth:`reject_join` instead).
        """
        channel = self._instance(topic, join_ref, "joined")
        if channel is None:
            return None
        del self._channels[topic]
        return frames.close(channel.join_ref, topic)

    # -- queries ------------------------------------------------------------------------------

    def is_joined(self, topic: str) -> bool:
        """Whether ``topic`` is joined (its join accepted) on this connection."""
        return self._instance(topic, None, "joined") is not None

    def joined_topics(self) -> dict[str, str]:
        """Joined topics and their current ``join_ref`` (a copy)."""
        return {t: c.join_ref for t, c in self._channels.items() if c.state == "joined"}

    def topic_state(self, topic: str) -> ChannelState | None:
        """``"joining"``, ``"joined"``, or ``None`` when ``topic`` has no channel."""
        channel = self._channels.get(topic)
        return None if channel is None else channel.state


def _unmatched(ref: str | None, topic: str) -> bytes:
    # Phoenix's encode_ignore: join_ref null, the push's ref.
    return frames.reply(None, ref, topic, "error", {"reason": Reason.UNMATCHED_TOPIC.value})
