"""Broker events as Phoenix broadcast frames, encoded once per event per node.

A broker event reaches every subscribed connection of the node through the same ``bytes``
object (the local fan-out hands it to each handler in turn), so a one-entry cache keyed on
that object's identity turns N encodings into one. The few facts connections need to route
an event (its seq, who it is about) are read here once too, never per connection.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.events import split_event
from whispr.protocol import frames

__all__ = ["Outgoing", "outgoing"]


class _Head(msgspec.Struct):
    conversation_id: str = ""
    seq: int = 0
    sender_id: str = ""
    kind: str = ""
    created_at: float = 0.0


class _NewMessage(msgspec.Struct):
    message: _Head


class _Conversation(msgspec.Struct):
    id: str = ""


class _About(msgspec.Struct):
    user_id: str = ""
    conversation_id: str = ""
    conversation: _Conversation | None = None


_decode_new = msgspec.json.Decoder(_NewMessage).decode
_decode_about = msgspec.json.Decoder(_About).decode

#: Events whose subject is read: typing (not echoed to the typer), removal (ends the channel),
#: and the user's conversation list changing (the ``user:`` channel follows it).
_ABOUT = frozenset({"user_typing", "member_removed", "conversation_added", "conversation_removed"})


class Outgoing(msgspec.Struct, frozen=True, gc=False):
    """One broker event, ready to send: the broadcast frame and its routing facts."""

    topic: str
    event: str
    frame: bytes
    payload: bytes
    head: _Head | None = None  # new_message only
    user_id: str = ""  # user_typing, member_removed
    conversation_id: str = ""  # conversation_added, conversation_removed


_last: tuple[Any, Outgoing | None] = (None, None)


def outgoing(topic: str, data: bytes) -> Outgoing:
    """``data`` from the broker on ``topic`` as an :class:`Outgoing` (cached for the same
    object)."""
    global _last
    cached_data, cached = _last
    if cached_data is data and cached is not None and cached.topic == topic:
        return cached
    event, payload = split_event(data)
    head = _decode_new(payload).message if event == "new_message" else None
    user_id = conversation_id = ""
    if event in _ABOUT:
        about = _decode_about(payload)
        user_id = about.user_id
        conversation_id = about.conversation_id or (
            about.conversation.id if about.conversation is not None else ""
        )
    frame = frames.encode_broadcast(topic, event, msgspec.Raw(payload))
    result = Outgoing(topic, event, frame, payload, head, user_id, conversation_id)
    _last = (data, result)
    return result
