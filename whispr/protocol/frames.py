"""Phoenix Channels V2 JSON frames: decode, encode and the server's frame builders.

A frame is a JSON array ``[join_ref, ref, topic, event, payload]`` carried in one WebSocket
*text* message. This module knows nothing about sockets, channels or time: it turns bytes into
a :class:`Frame` (or a :class:`ProtocolError`) and frames into bytes.

Binary frames (the V2 binary push of ``serializer.js``, whose payload is an ``ArrayBuffer``)
are not supported: :func:`decode_binary` always raises ``ProtocolError("unsupported", ...)``.

Every builder returns UTF-8 JSON bytes; the gateway must send them as **text** frames
(websockets: ``await ws.send(data, text=True)``), because the JS client hands binary frames to
its binary decoder.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = [
    "CLOSE_CODES",
    "DEFAULT_MAX_SIZE",
    "MAX_NAME_LENGTH",
    "PHOENIX_TOPIC",
    "Frame",
    "ProtocolError",
    "ProtocolErrorReason",
    "broadcast",
    "broadcast_raw",
    "close",
    "decode",
    "decode_binary",
    "encode",
    "error",
    "push",
    "reply",
]

#: Longest topic, event, ``join_ref`` or ``ref`` accepted, in characters.
MAX_NAME_LENGTH: Final = 255
#: Default largest frame accepted, in bytes (content limit 10,000 bytes plus envelope).
DEFAULT_MAX_SIZE: Final = 64 * 1024
#: The topic of socket-level control frames (``heartbeat``).
PHOENIX_TOPIC: Final = "phoenix"

# Control events of the protocol.
PHX_JOIN: Final = "phx_join"
PHX_LEAVE: Final = "phx_leave"
PHX_REPLY: Final = "phx_reply"
PHX_ERROR: Final = "phx_error"
PHX_CLOSE: Final = "phx_close"
HEARTBEAT: Final = "heartbeat"

ProtocolErrorReason = Literal[
    "too_large", "invalid_utf8", "invalid_json", "invalid_frame", "unsupported"
]

#: The WebSocket close code the gateway uses for each reason of a :class:`ProtocolError`.
CLOSE_CODES: Final[dict[str, int]] = {
    "too_large": 1009,
    "invalid_utf8": 1007,
    "invalid_json": 1007,
    "invalid_frame": 1007,
    "unsupported": 1003,
}

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_Ref = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]


class ProtocolError(Exception):
    """A frame that cannot be decoded; the only exception :func:`decode` raises.

    ``reason`` is machine-readable (see :data:`CLOSE_CODES`), ``message`` is for humans and
    logs (it may name the offending position, never echoes the frame).
    """

    def __init__(self, reason: ProtocolErrorReason, message: str) -> None:
        super().__init__(reason, message)
        self.reason: ProtocolErrorReason = reason
        self.message = message

    @property
    def close_code(self) -> int:
        """The WebSocket close code for this error."""
        return CLOSE_CODES[self.reason]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class Frame(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """One Phoenix V2 message: ``[join_ref, ref, topic, event, payload]``."""

    join_ref: _Ref | None
    ref: _Ref | None
    topic: _Name
    event: _Name
    payload: dict[str, Any]


_decoder: Final = msgspec.json.Decoder(Frame)
_encoder: Final = msgspec.json.Encoder()


def decode(data: bytes | str, *, max_size: int = DEFAULT_MAX_SIZE) -> Frame:
    """Decode one text message into a :class:`Frame`.

    The size is checked before anything is parsed. Raises only :class:`ProtocolError`:
    ``too_large`` (more than ``max_size`` bytes), ``invalid_utf8``, ``invalid_json`` (also
    lone UTF-16 surrogates), ``invalid_frame`` (not a 5-array of the right types, payload not
    an object, topic or event empty or longer than 255 characters).
    """
    if isinstance(data, str):
        if len(data) > max_size:  # characters <= bytes: too large already
            raise ProtocolError("too_large", f"frame larger than {max_size} bytes")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("invalid_utf8", "text contains lone surrogates") from None
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise ProtocolError("invalid_frame", f"expected bytes or str, got {type(data).__name__}")
    if len(raw) > max_size:
        raise ProtocolError("too_large", f"frame of {len(raw)} bytes, limit {max_size}")
    try:
        return _decoder.decode(raw)
    except UnicodeDecodeError as exc:
        raise ProtocolError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    except msgspec.ValidationError as exc:
        raise ProtocolError("invalid_frame", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("invalid_json", str(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: never anything else
        raise ProtocolError("invalid_json", f"undecodable frame ({type(exc).__name__})") from None


def decode_binary(data: bytes | str) -> Frame:
    """Refuse a binary WebSocket message: V2 binary pushes are not supported.

    Always raises ``ProtocolError("unsupported", ...)`` (close code 1003).
    """
    raise ProtocolError("unsupported", "binary frames are not supported; send JSON text frames")


def encode(frame: Frame) -> bytes:
    """Encode a frame to UTF-8 JSON bytes (the inverse of :func:`decode`)."""
    return _encoder.encode(frame)


def reply(
    join_ref: str | None,
    ref: str | None,
    topic: str,
    status: Literal["ok", "error"] | str,
    response: dict[str, Any],
) -> bytes:
    """A ``phx_reply`` to the push ``ref``: payload ``{"status": ..., "response": ...}``."""
    return encode(Frame(join_ref, ref, topic, PHX_REPLY, {"status": status, "response": response}))


def push(join_ref: str | None, topic: str, event: str, payload: dict[str, Any]) -> bytes:
    """A server push to one channel (``ref`` null), as Phoenix's ``push/3`` sends it."""
    return encode(Frame(join_ref, None, topic, event, payload))


def broadcast(topic: str, event: str, payload: dict[str, Any]) -> bytes:
    """A broadcast: ``join_ref`` and ``ref`` null; encode once, send the bytes to everyone."""
    return encode(Frame(None, None, topic, event, payload))


def broadcast_raw(topic: str, event: str, payload_json: bytes) -> bytes:
    """A broadcast around a payload already encoded as a JSON object, spliced in as is.

    The payload bytes are not parsed (only their first non-blank byte must be ``{``); the
    caller guarantees they are one valid UTF-8 JSON object.
    """
    if payload_json.lstrip()[:1] != b"{":
        raise ValueError("payload_json must be an encoded JSON object")
    return b"".join(
        (
            b"[null,null,",
            _encoder.encode(topic),
            b",",
            _encoder.encode(event),
            b",",
            payload_json,
            b"]",
        )
    )


def error(join_ref: str | None, topic: str) -> bytes:
    """A ``phx_error``: the channel crashed; the client rejoins. ``ref`` is the join_ref."""
    return encode(Frame(join_ref, join_ref, topic, PHX_ERROR, {}))


def close(join_ref: str | None, topic: str) -> bytes:
    """A ``phx_close``: the channel is closed for good. ``ref`` is the join_ref."""
    return encode(Frame(join_ref, join_ref, topic, PHX_CLOSE, {}))
