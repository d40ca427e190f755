"""What every channel kind shares: the callbacks, the event table, the payload codec.

A channel is one joined topic of one connection, as in Phoenix: :meth:`Channel.join` decides
whether the join is accepted and what its reply says, :meth:`Channel.after_join` runs once the
reply is sent (catch-up, presence), :meth:`Channel.handle_in` answers the client's pushes, and
:meth:`Channel.handle_out` sends the topic's broker events to the client. Each kind is one
class in a module of its own (``conversation``, ``user``, ``notification``), owning its state
and its :class:`EventTable`: one msgspec struct per client event, decoded before the handler
runs, so a malformed payload is refused with ``invalid`` naming the field and nothing is done.

A channel reaches its connection only through :class:`ChannelHost`, the connection actor's
public face: send a frame, send one waiting for the client to read, close the socket, end
this channel.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import msgspec

from actors import rules
from actors.broker import Subscription
from actors.errors import Reason, WhisprError
from actors.events import BrokerEvent, decode_event
from actors.stream import HELD_EVENTS_LIMIT
from whispr.audit.record import Source
from whispr.auth import Identity
from whispr.gateway.context import GatewayContext
from whispr.gateway.fanout import broadcast_frame
from whispr.protocol import CloseCode, ConnectionProtocol

__all__ = [
    "Channel",
    "ChannelHost",
    "EventTable",
    "Payload",
    "Reply",
    "decode_payload",
    "field_of",
]

Reply = dict[str, Any] | None
"""A push's ``ok`` response (None: an empty one)."""

_C = TypeVar("_C", bound="Channel")
_P = TypeVar("_P", bound=msgspec.Struct)


class Payload(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of client payloads: unknown fields are refused, so typos are caught."""


def decode_payload(kind: type[_P], payload: dict[str, Any] | bytes) -> _P:
    """``payload`` (a decoded JSON object) as ``kind``; refusals are ``invalid`` errors
    naming the payload's field (``field``), as every other ``invalid`` reply does."""
    if isinstance(payload, bytes):
        raise WhisprError(Reason.INVALID, "this event takes a JSON payload")
    try:
        return msgspec.convert(payload, kind)
    except msgspec.ValidationError as exc:
        # msgspec quotes a refused value or unknown field's name, which may hold a lone
        # surrogate that no reply could encode: escaped here, so the reply goes out.
        message = _escaped(str(exc))
        details = {"field": name} if (name := field_of(message)) else {}
        raise WhisprError(Reason.INVALID, f"invalid payload: {message}", **details) from None
    except UnicodeEncodeError:
        # msgspec encodes a string it matches against a field's allowed values (a Literal):
        # a lone surrogate there fails before any of the rules' checks, which name the field.
        for name, value in payload.items():
            rules.check_json_text(name, "payload")
            rules.check_json_text(value, name)
        raise


#: A msgspec validation error's path (``- at `$.attachments[0].size```): its first field.
_PATH = re.compile(r"at `\$\.([^.\[`]+)")
#: A missing or unknown field of the payload itself (``Object missing required field `seq```).
_NAMED = re.compile(r"field `([^`]+)`")


def _escaped(text: str) -> str:
    """``text`` with any lone surrogate as a ``\\udXXX`` escape: encodable in a reply."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def field_of(message: str) -> str | None:
    """The payload field a msgspec validation error is about (the outermost one).

    msgspec says where a value failed only in its message (``- at `$.seq```, or the field's
    name for a missing or unknown one); tests/gateway/test_channel_kinds.py pins the wording
    of the locked version.
    """
    path = _PATH.search(message)
    if path is not None:
        return path.group(1)
    named = _NAMED.search(message)
    return named.group(1) if named is not None else None


class ChannelHost(Protocol):
    """What a channel may use of its connection (``ConnectionActor``'s public methods)."""

    ctx: GatewayContext
    identity: Identity
    user_id: str
    proto: ConnectionProtocol
    #: The connection's transport, as the audit log names it.
    source: Source

    def send(self, data: bytes | None) -> None:
        """Queue one frame; written at the end of this loop turn."""

    async def send_waiting(self, data: bytes | None) -> None:
        """Queue one frame, first waiting for the client to read (catch-up)."""

    def close(self, code: int, reason: str) -> None:
        """Close the socket."""

    def end_channel(self, channel: Channel) -> None:
        """Forget ``channel`` for good (no rejoin follows), releasing what it holds."""

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the connection's messages."""

    def is_current(self, channel: Channel) -> bool:
        """Whether ``channel`` is still the connection's instance of its topic."""


Handler = Callable[[_C, Any, str], Awaitable[Reply]]
TypedHandler = Callable[[_C, _P, str], Awaitable[Reply]]


class EventTable(Generic[_C]):
    """A channel kind's client events: name -> (payload struct, handler).

    Filled with :meth:`on` as the kind's handlers are defined; a handler gets the channel,
    the decoded payload and the event's name (one handler may serve two events).
    """

    def __init__(self) -> None:
        self.events: dict[str, tuple[type[msgspec.Struct], Handler[_C]]] = {}

    def on(
        self, event: str, payload: type[_P]
    ) -> Callable[
        [Callable[[_C, _P, str], Awaitable[Reply]]], Callable[[_C, _P, str], Awaitable[Reply]]
    ]:
        """Register the decorated method as the handler of ``event``, taking ``payload``."""

        def register(
            handler: Callable[[_C, _P, str], Awaitable[Reply]],
        ) -> Callable[[_C, _P, str], Awaitable[Reply]]:
            self.events[event] = (payload, handler)
            return handler

        return register

    def names(self) -> list[str]:
        """The events, sorted (for the ``unknown event`` error)."""
        return sorted(self.events)


class Channel:
    """One joined topic of one connection; subclasses are the channel kinds."""

    #: The topic prefix this kind serves (``conversation`` for ``conversation:<id>``).
    kind: ClassVar[str]
    #: The kind's client events.
    table: ClassVar[EventTable[Any]]

    def __init__(self, host: ChannelHost, topic: str, target: str, join_ref: str) -> None:
        self.host = host
        self.topic = topic
        #: What the topic names after its prefix: a conversation id or a user id.
        self.target = target
        self.join_ref = join_ref
        self._subscriptions: list[Subscription] = []
        #: Live events held back until the join's reply is sent; None once live.
        self._held: list[BrokerEvent] | None = []

    # -- the callbacks --------------------------------------------------------------------

    async def join(self, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        """Accept the join (its reply) or raise the refusal; subscribe before answering."""
        raise NotImplementedError

    async def after_join(self) -> None:
        """Runs once the join's reply is sent: by default, go live."""
        self.release()

    async def handle_in(self, event: str, payload: dict[str, Any] | bytes) -> Reply:
        """Answer one client push: decode its payload, run its handler."""
        entry = self.table.events.get(event)
        if entry is None:
            raise WhisprError(
                Reason.INVALID,
                f"unknown event {event!r} on {self.kind}: topics",
                events=self.table.names(),
            )
        payload_type, handler = entry
        decoded = decode_payload(payload_type, payload)
        host = self.host
        # Before anything is done: the event's rate limit, then the watch for abuse.
        await host.ctx.limits.check(host.user_id, self.kind, event)
        await host.ctx.abuse.observe(host, self.kind, event, self.target, decoded)
        return await handler(self, decoded, event)

    def handles(self, event: str) -> bool:
        """Whether ``event`` is one of this kind's client events (a bounded metric label)."""
        return event in self.table.events

    def pipelined(self, event: str) -> bool:
        """Whether pushes of ``event`` may start before the previous ones are answered."""
        return False

    def handle_out(self, event: BrokerEvent) -> None:
        """Send one broker event of the topic to the client (a broadcast frame)."""
        host = self.host
        host.send(host.proto.broadcast(self.topic, broadcast_frame(self.topic, event)))

    def drop(self) -> None:
        """Stop receiving events (synchronous: nothing is sent after this returns)."""
        for subscription in self._subscriptions:
            subscription.cancel()
        self._subscriptions.clear()
        self._held = None

    async def leave(self) -> None:
        """The channel ends (left, rejoined, disconnected): undo what joining did."""
        self.drop()

    # -- for the kinds --------------------------------------------------------------------

    def require_own_topic(self) -> None:
        """Refuse a join of another user's ``user:`` or ``notification:`` topic."""
        if self.target != self.host.user_id:
            raise WhisprError(Reason.FORBIDDEN, f"{self.kind}: topics are their owner's only")

    async def subscribe(self, topic: str) -> None:
        """Receive ``topic``'s events through :meth:`handle_out`, held until :meth:`release`."""

        def on_event(_topic: str, data: bytes) -> None:
            event = decode_event(data)
            held = self._held
            if held is not None:
                held.append(event)
                if len(held) > HELD_EVENTS_LIMIT:
                    self.host.close(CloseCode.TRY_AGAIN_LATER, "client too slow")
            elif self.host.is_current(self):
                self.handle_out(event)

        self._subscriptions.append(await self.host.ctx.broker.subscribe(topic, on_event))

    def release(self) -> None:
        """Go live: send the events held since the subscription."""
        held, self._held = self._held or [], None
        for event in held:
            if not self.host.is_current(self):
                return
            self.handle_out(event)
