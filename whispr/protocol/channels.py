"""The per-connection channel state machine of Phoenix Channels V2, with no I/O.

Modeled on websockets' ``Protocol``: the gateway feeds each received WebSocket message to
:meth:`ConnectionProtocol.receive` and gets back a list of events, in order. Some events are
for the layer above (:class:`JoinRequested`, :class:`PushReceived`, :class:`LeaveRequested`);
:class:`SendFrame` carries bytes the core answered by itself (heartbeat replies, ``unmatched
topic`` errors, leave replies, ``phx_close``) and must be written, as a *text* frame, in the
order it appears; :class:`Violation` means the connection must be closed with ``code``.

The layer above answers with the methods that return bytes (:meth:`accept_join`,
:meth:`reject_join`, :meth:`reply`, :meth:`push`, :meth:`channel_crashed`,
:meth:`close_channel`); an empty ``b""`` means "nothing to send": the topic is no longer in the
state the answer was for (left, rejoined with a new ``join_ref``, crashed). Do not send it.

Time is injected: ``clock`` (default :func:`time.monotonic`) is read on each receive, and
:meth:`tick` compares a given ``now`` with the last frame received.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from whispr.protocol import frames
from whispr.protocol.frames import (
    HEARTBEAT,
    PHOENIX_TOPIC,
    PHX_CLOSE,
    PHX_ERROR,
    PHX_JOIN,
    PHX_LEAVE,
    PHX_REPLY,
    Frame,
    ProtocolError,
)

__all__ = [
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_MAX_TOPICS",
    "ConnectionProtocol",
    "Event",
    "JoinRequested",
    "LeaveRequested",
    "PushReceived",
    "SendFrame",
    "TopicState",
    "Violation",
]

DEFAULT_MAX_TOPICS: Final = 100
DEFAULT_HEARTBEAT_TIMEOUT: Final = 90.0

#: Events a client may not push: they are the server's to send.
_RESERVED_EVENTS: Final = frozenset({PHX_REPLY, PHX_ERROR, PHX_CLOSE})

TopicState = Literal["joining", "joined"]


@dataclass(frozen=True, slots=True)
class JoinRequested:
    """The client asks to join ``topic``: authorize, then call ``accept_join``/``reject_join``."""

    topic: str
    join_ref: str
    ref: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PushReceived:
    """A client push on a joined topic; answer with :meth:`ConnectionProtocol.reply`."""

    topic: str
    event: str
    join_ref: str
    ref: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LeaveRequested:
    """The channel ``(topic, join_ref)`` is gone: tear down its subscriptions.

    The core already replied and sent ``phx_close``. ``ref`` is ``None`` when the leave is
    implied by a duplicate join of the same topic (a :class:`JoinRequested` follows).
    """

    topic: str
    join_ref: str
    ref: str | None


@dataclass(frozen=True, slots=True)
class Violation:
    """A frame that cannot be answered in band: close the WebSocket with ``code``."""

    reason: str
    message: str
    code: int


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Bytes the core answered by itself: send as one text frame, in order."""

    data: bytes


Event = JoinRequested | PushReceived | LeaveRequested | Violation | SendFrame


@dataclass(slots=True)
class _Channel:
    join_ref: str
    join_msg_ref: str | None  # the ref of the phx_join push, answered by accept/reject
    state: TopicState


class ConnectionProtocol:
    """Phoenix Channels V2 for one WebSocket connection: bytes in, events and bytes out.

    Not thread-safe; one instance per connection, driven by one task. After a
    :class:`Violation` the protocol is closed and :meth:`receive` returns ``[]``.
    """

    def __init__(
        self,
        *,
        max_size: int = frames.DEFAULT_MAX_SIZE,
        max_topics: int = DEFAULT_MAX_TOPICS,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_size = max_size
        self.max_topics = max_topics
        self.heartbeat_timeout = heartbeat_timeout
        self._clock = clock
        self._channels: dict[str, _Channel] = {}
        self.last_seen: float = clock()
        self.closed = False

    # -- input ---------------------------------------------------------------------------

    def receive(self, data: bytes | str, *, binary: bool = False) -> list[Event]:
        """Handle one WebSocket message; ``binary`` says it came in a binary frame.

        Never raises: a frame that cannot be decoded becomes a :class:`Violation` (and the
        protocol closes); anything answerable in band becomes a :class:`SendFrame`.
        """
        if self.closed:
            return []
        try:
            frame = (
                frames.decode_binary(data)
                if binary
                else frames.decode(data, max_size=self.max_size)
            )
        except ProtocolError as exc:
            self.closed = True
            return [Violation(exc.reason, exc.message, exc.close_code)]
        self.last_seen = self._clock()
        return self._handle(frame)

    def tick(self, now: float) -> bool:
        """Whether the heartbeat timeout has passed since the last frame received.

        Any well-formed frame counts as a sign of life, heartbeats included.
        """
        return now - self.last_seen > self.heartbeat_timeout

    def _handle(self, frame: Frame) -> list[Event]:
        topic, event = frame.topic, frame.event
        if topic == PHOENIX_TOPIC:
            if event == HEARTBEAT:
                return [SendFrame(frames.reply(None, frame.ref, PHOENIX_TOPIC, "ok", {}))]
            return [self._unmatched(frame)]
        if event == PHX_JOIN:
            return self._join(frame)
        channel = self._channels.get(topic)
        if channel is None or (frame.join_ref is not None and frame.join_ref != channel.join_ref):
            return [self._unmatched(frame)]
        if event == PHX_LEAVE:  # also while joining: a later accept_join then returns b""
            del self._channels[topic]
            return [
                SendFrame(frames.reply(channel.join_ref, frame.ref, topic, "ok", {})),
                SendFrame(frames.close(channel.join_ref, topic)),
                LeaveRequested(topic, channel.join_ref, frame.ref),
            ]
        if channel.state != "joined":  # the JS client buffers pushes until joined
            return [self._unmatched(frame)]
        if event in _RESERVED_EVENTS:
            return [
                SendFrame(
                    frames.reply(
                        channel.join_ref,
                        frame.ref,
                        topic,
                        "error",
                        {"reason": "invalid", "message": f"{event} is a server event"},
                    )
                )
            ]
        return [PushReceived(topic, event, channel.join_ref, frame.ref, frame.payload)]

    def _join(self, frame: Frame) -> list[Event]:
        topic = frame.topic
        join_ref = frame.join_ref if frame.join_ref is not None else frame.ref
        if join_ref is None:
            return [
                SendFrame(
                    frames.reply(
                        None,
                        None,
                        topic,
                        "error",
                        {"reason": "invalid", "message": "phx_join without join_ref"},
                    )
                )
            ]
        out: list[Event] = []
        old = self._channels.pop(topic, None)
        if old is not None:
            out.append(SendFrame(frames.close(old.join_ref, topic)))
            out.append(LeaveRequested(topic, old.join_ref, None))
        elif len(self._channels) >= self.max_topics:
            out.append(
                SendFrame(
                    frames.reply(join_ref, frame.ref, topic, "error", {"reason": "too_many_topics"})
                )
            )
            return out
        self._channels[topic] = _Channel(join_ref, frame.ref, "joining")
        out.append(JoinRequested(topic, join_ref, frame.ref, frame.payload))
        return out

    @staticmethod
    def _unmatched(frame: Frame) -> SendFrame:
        # As Phoenix's encode_ignore: join_ref null, the push's ref.
        return SendFrame(
            frames.reply(None, frame.ref, frame.topic, "error", {"reason": "unmatched topic"})
        )

    # -- answers from the layer above ------------------------------------------------------

    def _pending(self, topic: str, join_ref: str | None) -> _Channel | None:
        channel = self._channels.get(topic)
        if channel is None or channel.state != "joining":
            return None
        if join_ref is not None and join_ref != channel.join_ref:
            return None
        return channel

    def _current(self, topic: str, join_ref: str | None) -> _Channel | None:
        channel = self._channels.get(topic)
        if channel is None or channel.state != "joined":
            return None
        if join_ref is not None and join_ref != channel.join_ref:
            return None
        return channel

    def accept_join(
        self, topic: str, response: dict[str, Any], *, join_ref: str | None = None
    ) -> bytes:
        """Accept the pending join of ``topic``: the ok reply, or ``b""`` if none is pending.

        Pass the ``join_ref`` of the :class:`JoinRequested` being answered so that a late
        answer to a superseded join (the client rejoined meanwhile) is dropped.
        """
        channel = self._pending(topic, join_ref)
        if channel is None:
            return b""
        channel.state = "joined"
        return frames.reply(channel.join_ref, channel.join_msg_ref, topic, "ok", response)

    def reject_join(
        self, topic: str, reason_payload: dict[str, Any], *, join_ref: str | None = None
    ) -> bytes:
        """Refuse the pending join: the error reply (topic forgotten), or ``b""``."""
        channel = self._pending(topic, join_ref)
        if channel is None:
            return b""
        del self._channels[topic]
        return frames.reply(channel.join_ref, channel.join_msg_ref, topic, "error", reason_payload)

    def reply(
        self,
        topic: str,
        ref: str | None,
        status: Literal["ok", "error"] | str,
        response: dict[str, Any],
        *,
        join_ref: str | None = None,
    ) -> bytes:
        """Reply to push ``ref`` on a joined topic; ``b""`` if the topic is no longer joined
        (or no longer under ``join_ref``, when given): the client has moved on, drop it."""
        channel = self._current(topic, join_ref)
        if channel is None:
            return b""
        return frames.reply(channel.join_ref, ref, topic, status, response)

    def push(self, topic: str, event: str, payload: dict[str, Any]) -> bytes:
        """A server push to this connection's channel on ``topic``; ``b""`` if not joined."""
        channel = self._current(topic, None)
        if channel is None:
            return b""
        return frames.push(channel.join_ref, topic, event, payload)

    def channel_crashed(self, topic: str, *, join_ref: str | None = None) -> bytes:
        """The channel's handler failed: forget the topic and tell the client to rejoin.

        Joined: ``phx_error`` (the JS client rejoins with backoff). Still joining: an error
        reply ``{"reason": "join crashed"}`` to the join, as Phoenix does. ``b""`` if unknown.
        """
        channel = self._channels.get(topic)
        if channel is None or (join_ref is not None and join_ref != channel.join_ref):
            return b""
        del self._channels[topic]
        if channel.state == "joining":
            return frames.reply(
                channel.join_ref, channel.join_msg_ref, topic, "error", {"reason": "join crashed"}
            )
        return frames.error(channel.join_ref, topic)

    def close_channel(self, topic: str, *, join_ref: str | None = None) -> bytes:
        """The server ends a joined channel for good (e.g. membership revoked): ``phx_close``.

        The JS client does not rejoin after ``phx_close``. ``b""`` if not joined.
        """
        channel = self._current(topic, join_ref)
        if channel is None:
            return b""
        del self._channels[topic]
        return frames.close(channel.join_ref, topic)

    # -- queries ---------------------------------------------------------------------------

    def is_joined(self, topic: str) -> bool:
        """Whether ``topic`` is joined (its join accepted) on this connection."""
        channel = self._channels.get(topic)
        return channel is not None and channel.state == "joined"

    def joined_topics(self) -> dict[str, str]:
        """Joined topics and their ``join_ref`` (a copy)."""
        return {t: c.join_ref for t, c in self._channels.items() if c.state == "joined"}

    def topic_state(self, topic: str) -> TopicState | None:
        """``"joining"``, ``"joined"`` or ``None`` for ``topic``."""
        channel = self._channels.get(topic)
        return None if channel is None else channel.state
