"""Events on the broker: what a conversation tells everyone who follows it, and their codec.

An event travels as ``name`` and a JSON payload, joined by a newline:
``b"new_message\\n{...}"``; an event made under a sampled span has a third line, its W3C
``traceparent`` (:mod:`actors.tracing`), so that its delivery on another node joins the
publisher's trace. The JSON has no raw newline (msgspec escapes them in strings), so the
lines are unambiguous, and an unsampled event is the two lines alone. Keeping the payload as
ready JSON lets the gateway build a Phoenix broadcast frame by splicing bytes, encoding each
event once however many sockets receive it.

This module is the one codec of those bytes. :func:`decode_event` reads an event once into a
:class:`BrokerEvent`: its name, its payload's JSON untouched, and the few routing facts its
consumers need (a new message's :class:`MessageHead`, whom a membership or typing event is
about). Every consumer (the conversation actor, the gateway's channels, gRPC's followers,
through :mod:`actors.stream`) reads events through it; the broker hands the same ``bytes``
object to every local subscriber, so a one-entry cache on that object's identity decodes an
event once per node, not once per subscriber.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "BrokerEvent",
    "MessageHead",
    "conversation_topic",
    "decode_event",
    "encode_event",
    "payload_of",
    "trace_of",
    "user_topic",
]

_encoder = msgspec.json.Encoder()

#: Events whose subject is read: typing (not echoed to the typer), removal (ends the
#: channel), and the user's conversation list changing (the ``user:`` channel follows it).
_ABOUT: Final = frozenset(
    {"user_typing", "member_removed", "conversation_added", "conversation_removed"}
)


def conversation_topic(conversation_id: str) -> str:
    """The topic every event of one conversation is published on."""
    return f"conversation:{conversation_id}"


def user_topic(user_id: str) -> str:
    """The topic of one user's own events (conversation list, read sync)."""
    return f"user:{user_id}"


def encode_event(name: str, payload: Any, trace: str = "") -> bytes:
    """``name`` and the JSON of ``payload`` (msgspec structs, dicts, ...) as one frame.

    ``trace``: the ``traceparent`` of the span that published it, for a sampled message only.
    """
    data = name.encode() + b"\n" + _encoder.encode(payload)
    return data + b"\n" + trace.encode() if trace else data


def trace_of(data: bytes) -> str:
    """The ``traceparent`` an event carries, or "" (cheaper than decoding it: two scans)."""
    end = data.find(b"\n")
    end = data.find(b"\n", end + 1) if end >= 0 else -1
    return "" if end < 0 else data[end + 1 :].decode()


class MessageHead(msgspec.Struct, frozen=True, gc=False):
    """What routing needs of a ``new_message`` event: where it sits, who sent what kind."""

    conversation_id: str = ""
    seq: int = 0
    sender_id: str = ""
    kind: str = ""
    created_at: float = 0.0


class _NewMessage(msgspec.Struct, gc=False):
    message: MessageHead
    #: An end-to-end message's envelopes, left as JSON (only their devices' followers read it).
    envelopes: msgspec.Raw = msgspec.Raw(b"")


class _ConversationRef(msgspec.Struct, gc=False):
    id: str = ""


class _About(msgspec.Struct, gc=False):
    user_id: str = ""
    conversation_id: str = ""
    conversation: _ConversationRef | None = None


_decode_new = msgspec.json.Decoder(_NewMessage).decode
_decode_about = msgspec.json.Decoder(_About).decode


class BrokerEvent(msgspec.Struct, frozen=True, gc=False):
    """One broker event, decoded once: its name, its payload's JSON, its routing facts."""

    name: str
    #: The payload's JSON as published: spliced into frames, decoded only by who needs it all.
    payload: bytes
    #: ``new_message`` only: the message's place and sender.
    head: MessageHead | None = None
    #: Whom it is about: ``user_typing``, ``member_removed``, else empty.
    user_id: str = ""
    #: Which conversation: ``conversation_added`` / ``conversation_removed``, else empty.
    conversation_id: str = ""
    #: The publisher's W3C ``traceparent`` when its span was sampled, else empty.
    trace: str = ""
    #: ``new_message`` end to end: the JSON list of its per-device envelopes, else empty
    #: (each follower sends its device's own: actors/e2e/delivery.py).
    envelopes: bytes = b""

    @property
    def seq(self) -> int | None:
        """The seq of a ``new_message`` event; None for every other event."""
        return None if self.head is None else self.head.seq


_last: tuple[bytes | None, BrokerEvent | None] = (None, None)


def decode_event(data: bytes) -> BrokerEvent:
    """``data`` from the broker as a :class:`BrokerEvent` (cached for the same object).

    Raises ``msgspec.DecodeError`` or ``msgspec.ValidationError`` for bytes that no node
    published (a payload that is not JSON, a seq that is not an integer).
    """
    global _last
    cached_data, cached = _last
    if cached_data is data and cached is not None:
        return cached
    raw_name, _, rest = data.partition(b"\n")
    payload, _, trace = rest.partition(b"\n")
    name = raw_name.decode()
    head = None
    envelopes = b""
    if name == "new_message":
        new = _decode_new(payload)
        head = new.message
        if new.envelopes:
            envelopes = bytes(new.envelopes)
    user_id = conversation_id = ""
    if name in _ABOUT:
        about = _decode_about(payload)
        user_id = about.user_id
        conversation_id = about.conversation_id or (
            about.conversation.id if about.conversation is not None else ""
        )
    event = BrokerEvent(name, payload, head, user_id, conversation_id, trace.decode(), envelopes)
    _last = (data, event)
    return event


def payload_of(event: BrokerEvent) -> Any:
    """The whole payload as plain JSON values, for a consumer that re-encodes it (gRPC)."""
    return msgspec.json.decode(event.payload)
