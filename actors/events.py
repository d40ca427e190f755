"""Events on the broker: what a conversation tells everyone who follows it.

An event travels as ``name`` and a JSON payload, joined by a newline:
``b"new_message\\n{...}"``. Keeping the payload as ready JSON lets the
gateway build a Phoenix broadcast frame by splicing bytes, encoding each
event once however many sockets receive it.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["conversation_topic", "decode_event", "encode_event", "split_event", "user_topic"]

_encoder = msgspec.json.Encoder()


def conversation_topic(conversation_id: str) -> str:
    """The topic every event of one conversation is published on."""
    return f"conversation:{conversation_id}"


def user_topic(user_id: str) -> str:
    """The topic of one user's own events (conversation list, read sync)."""
    return f"user:{user_id}"


def encode_event(name: str, payload: Any) -> bytes:
    """``name`` and the JSON of ``payload`` (msgspec structs, dicts, ...) as one frame."""
    return name.encode() + b"\n" + _encoder.encode(payload)


def split_event(data: bytes) -> tuple[str, bytes]:
    """The event name and its payload's JSON bytes, without decoding the payload."""
    name, _, payload = data.partition(b"\n")
    return name.decode(), payload


def decode_event(data: bytes) -> tuple[str, Any]:
    """The event name and its decoded payload (plain JSON values)."""
    name, payload = split_event(data)
    return name, msgspec.json.decode(payload)
