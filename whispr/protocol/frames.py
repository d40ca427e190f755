"""Phoenix Channels V2 frames: decode, encode, and the frames the server sends.

This is the codec of ``Phoenix.Socket.V2.JSONSerializer`` (server) and ``serializer.js``
(client), with no sockets, channels or clocks: bytes in, a :class:`Frame` or a
:class:`ProtocolError` out; payloads in, bytes out.

Text frames
    One WebSocket *text* message holds one JSON array ``[join_ref, ref, topic, event,
    payload]``. ``join_ref`` and ``ref`` are strings or null, ``topic`` and ``event`` non-empty
    strings, ``payload`` a JSON object.

Binary frames
    ``serializer.js`` sends a push whose payload is an ``ArrayBuffer`` as a *binary* message,
    and decodes three binary kinds from the server. The layouts (one byte per size, sizes in
    bytes, at most 255) are::

        client push  0 | jr_size | ref_size | topic_size | event_size | jr ref topic event | data
        server push  0 | jr_size | topic_size | event_size | jr topic event | data
        reply        1 | jr_size | ref_size | topic_size | status_size | jr ref topic status | data
        broadcast    2 | topic_size | event_size | topic event | data

    A server push has no ``ref`` (the client never answers a push); a binary reply carries the
    status in the event slot. An empty ``join_ref``/``ref`` decodes to ``None``.

What the official clients send decides how strict we are. phoenix.js, SwiftPhoenixClient and
JavaPhoenixClient all make ``ref``/``join_ref`` strings (``makeRef`` returns
``String(counter)``), and the client matches a reply with ``===`` on the ref it sent, so a ref is
echoed exactly as received. An integer ref would have to be echoed as an integer to match; since
no official client sends one, integers are refused (``invalid``) rather than half-supported.
Phoenix itself also tolerates extra trailing array elements; we refuse them (no client sends
them, and a 6-element array is more likely a bug than an extension).

Every builder returns the encoded bytes. Text frames always start with ``[`` and binary ones with
their kind byte (0, 1 or 2), so :func:`is_binary` tells the gateway which opcode to use without
carrying a flag alongside every message (websockets: ``await ws.send(data, text=not
frames.is_binary(data))``). Sending JSON as a *binary* message would be wrong: phoenix.js hands
every ``ArrayBuffer`` to its binary decoder.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec

__all__ = [
    "DEFAULT_MAX_SIZE",
    "HEARTBEAT",
    "MAX_NAME_LENGTH",
    "PHOENIX_TOPIC",
    "PHX_CLOSE",
    "PHX_ERROR",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "BinaryFrame",
    "BinaryPayload",
    "CloseCode",
    "Frame",
    "Payload",
    "ProtocolError",
    "Reason",
    "Status",
    "close",
    "decode",
    "decode_binary",
    "encode",
    "encode_broadcast",
    "error",
    "heartbeat_reply",
    "is_binary",
    "push",
    "reply",
]

#: Longest topic, event, ``join_ref`` or ``ref`` accepted (characters in text frames, bytes in
#: binary ones, which is the binary format's one-byte size limit).
MAX_NAME_LENGTH: Final = 255
#: Default largest message accepted, in bytes: message content is limited to 10,000 bytes by
#: the application; the rest is room for the envelope, JSON escaping and other fields.
DEFAULT_MAX_SIZE: Final = 64 * 1024
#: The topic of socket-level control frames (``heartbeat``); never a channel.
PHOENIX_TOPIC: Final = "phoenix"

PHX_JOIN: Final = "phx_join"
PHX_LEAVE: Final = "phx_leave"
PHX_REPLY: Final = "phx_reply"
PHX_ERROR: Final = "phx_error"
PHX_CLOSE: Final = "phx_close"
HEARTBEAT: Final = "heartbeat"

_KIND_PUSH: Final = 0
_KIND_REPLY: Final = 1
_KIND_BROADCAST: Final = 2

Status: TypeAlias = Literal["ok", "error"]
#: A JSON-object payload the encoders accept: a dict, a msgspec Struct (encoded as an object,
#: so not ``array_like``) or a :class:`msgspec.Raw` holding one already encoded JSON object,
#: which is spliced in unparsed (encode once, send many).
Payload: TypeAlias = dict[str, Any] | msgspec.Struct | msgspec.Raw
#: A binary payload: sent in a binary frame, as Phoenix does for ``{:binary, data}``.
BinaryPayload: TypeAlias = bytes | bytearray | memoryview


class Reason(enum.StrEnum):
    """Protocol-level error reasons: in ``ProtocolError.reason`` and in error replies.

    Reasons Phoenix itself defines keep Phoenix's exact spelling (clients and their tests may
    compare against it); ours are snake_case like the application's catalogue
    (``actors.errors.Reason``), with which ``invalid`` and ``too_large`` are shared.
    """

    #: Not a valid frame: wrong shape or types, payload not an object, a server-only event.
    INVALID = "invalid"
    #: Not UTF-8 (or a lone surrogate in a str).
    INVALID_UTF8 = "invalid_utf8"
    #: Not JSON at all.
    INVALID_JSON = "invalid_json"
    #: Larger than the configured maximum message size.
    TOO_LARGE = "too_large"
    #: A binary message where binary is not accepted, or a kind a client may not send.
    UNSUPPORTED = "unsupported"
    #: Phoenix: a push to a topic that is not joined (``encode_ignore``).
    UNMATCHED_TOPIC = "unmatched topic"
    #: Phoenix: ``max_channels_per_transport`` reached.
    TOO_MANY_CHANNELS = "too many channels joined"
    #: Phoenix: the join callback crashed.
    JOIN_CRASHED = "join crashed"
    #: Phoenix (1.8): the ``phx_error`` payload when a joined channel crashed.
    CHANNEL_CRASH = "channel_crash"


class CloseCode(enum.IntEnum):
    """WebSocket close codes used by the gateway (RFC 6455 section 7.4, IANA registry).

    phoenix.js 1.8 (the client the tests run, ``make phoenix-js``) reconnects after every
    close it did not ask for, whatever the code, 1000 included; its ``onClose`` callbacks get
    the code and reason. So a close that must not be followed by a reconnect says so with
    :attr:`DISCONNECTED`, which the application's ``onClose`` answers with
    ``socket.disconnect()`` (docs/protocol.md, "Disconnected by the server").
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    #: A backend disconnected the user or device, or revoked its token: do not reconnect
    #: with the same token (private range, RFC 6455 section 7.4.2).
    DISCONNECTED = 4001


_CLOSE_CODES: Final[Mapping[Reason, CloseCode]] = {
    Reason.TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    Reason.UNSUPPORTED: CloseCode.UNSUPPORTED_DATA,
}


class ProtocolError(Exception):
    """A message that cannot be decoded; the only exception :func:`decode` raises.

    ``reason`` is machine-readable, ``message`` is for people and logs (it may name the
    offending field, never echoes the message). When the envelope could still be read (a
    string ``ref`` and a valid ``topic``), ``ref``, ``topic`` and ``join_ref`` say where an
    in-band error reply can go, so that one bad push costs the client an error reply, not its
    connection (see :attr:`answerable`).
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        join_ref: str | None = None,
        ref: str | None = None,
        topic: str | None = None,
    ) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.join_ref = join_ref
        self.ref = ref
        self.topic = topic

    @property
    def answerable(self) -> bool:
        """Whether an error reply can be addressed to the push (it has a ref and a topic)."""
        return self.ref is not None and self.topic is not None

    @property
    def close_code(self) -> CloseCode:
        """The WebSocket close code when the error is not answered in band."""
        return _CLOSE_CODES.get(self.reason, CloseCode.INVALID_PAYLOAD)

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_Ref = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]


class Frame(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, gc=False):
    """One Phoenix V2 text message: ``[join_ref, ref, topic, event, payload]``.

    ``gc=False``: a frame only holds strings and its payload, so it can never be part of a
    reference cycle, and untracked instances make decoding cheaper under load.
    """

    join_ref: _Ref | None
    ref: _Ref | None
    topic: _Name
    event: _Name
    payload: dict[str, Any]


class BinaryFrame(msgspec.Struct, frozen=True, gc=False):
    """A binary push from a client (kind 0); ``payload`` is the raw bytes after the header."""

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: bytes


_decoder: Final = msgspec.json.Decoder(Frame)
_loose_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()

_FIELD_NAMES: Final = ("join_ref", "ref", "topic", "event", "payload")
# Shared, never mutated: encoded as is.
_EMPTY: Final[dict[str, Any]] = {}
_OK_EMPTY: Final[dict[str, Any]] = {"status": "ok", "response": _EMPTY}


def _check_size(data: bytes | bytearray | memoryview | str, max_size: int) -> bytes:
    """The message as bytes, refusing oversized ones before anything is parsed or copied."""
    if isinstance(data, str):
        # len(str) <= its UTF-8 length, so this check is safe before encoding.
        if len(data) > max_size:
            raise ProtocolError(Reason.TOO_LARGE, f"message larger than {max_size} bytes")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError(Reason.INVALID_UTF8, "text contains lone surrogates") from None
    elif isinstance(data, bytes):
        raw = data
    elif isinstance(data, bytearray | memoryview):
        if len(data) > max_size:  # before the copy
            raise ProtocolError(Reason.TOO_LARGE, f"message larger than {max_size} bytes")
        raw = bytes(data)
    else:
        raise ProtocolError(Reason.INVALID, f"expected bytes or str, got {type(data).__name__}")
    if len(raw) > max_size:
        raise ProtocolError(Reason.TOO_LARGE, f"message of {len(raw)} bytes, limit {max_size}")
    return raw


def _valid_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH


def _valid_ref(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME_LENGTH


def _invalid_frame(raw: bytes, exc: msgspec.ValidationError) -> ProtocolError:
    """A ProtocolError for well-formed JSON that is not a valid frame, addressed if possible.

    The second, untyped parse only happens for invalid frames, which are rare and at most
    ``max_size`` bytes.
    """
    message = str(exc)
    for index, name in enumerate(_FIELD_NAMES):
        message = message.replace(f"`$[{index}]", f"`{name}")
    try:
        value = _loose_decoder.decode(raw)
    except (msgspec.DecodeError, ValueError, RecursionError):  # nesting too deep for Any
        value = None
    if isinstance(value, list) and len(value) >= 3 and _valid_name(value[2]):
        ref, join_ref = value[1], value[0]
        if _valid_ref(ref):
            return ProtocolError(
                Reason.INVALID,
                f"invalid frame: {message}",
                join_ref=join_ref if _valid_ref(join_ref) else None,
                ref=ref,
                topic=value[2],
            )
    return ProtocolError(Reason.INVALID, f"invalid frame: {message}")


def _not_utf8(raw: bytes) -> ProtocolError | None:
    """An ``invalid_utf8`` error if ``raw`` is not strict UTF-8 (RFC 3629), else None.

    Only called once parsing has failed, so valid messages are never decoded twice. Strict
    means what RFC 6455 demands of a text message: no overlong forms, no encoded surrogates,
    nothing above U+10FFFF.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ProtocolError(Reason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}")
    return None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _with_lone_surrogates(raw: bytes) -> Frame | None:
    """The frame in ``raw`` if msgspec refused it only for lone UTF-16 surrogate escapes in the
    payload's strings (``"\\ud800"``), else None.

    RFC 8259 lets a JSON string hold such an escape, and ``JSON.stringify`` writes one for a
    JavaScript string cut in the middle of a pair, so a client may send it; msgspec refuses the
    whole message. Parsed again here, as strictly (no ``NaN``, no infinite numbers), the payload
    reaches its event's handler, where ``actors.rules.check_text`` refuses the string ``invalid``
    naming its field: one bad value costs an error reply, not the connection. In the envelope
    (refs, topic, event, echoed in every reply) a lone surrogate stays ``invalid_json``.
    """
    if b"\\u" not in raw:
        return None
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)
        frame = msgspec.convert(value, Frame)
    except (ValueError, RecursionError, msgspec.ValidationError):
        return None
    envelope = (frame.join_ref or "", frame.ref or "", frame.topic, frame.event)
    if not all(_encodable(name) for name in envelope):
        return None
    return frame


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode(
    data: bytes | bytearray | memoryview | str, *, max_size: int = DEFAULT_MAX_SIZE
) -> Frame:
    """Decode one text message into a :class:`Frame`; raises only :class:`ProtocolError`.

    Accepts ``bytes`` (the cheap path: websockets ``recv(decode=False)`` skips its own UTF-8
    decoding, and msgspec validates UTF-8 while parsing) or ``str``. The size is checked before
    anything is parsed. Reasons: ``too_large``, ``invalid_utf8``, ``invalid_json`` (also a lone
    UTF-16 surrogate escape in a ref, the topic or the event; in the payload's strings one is
    decoded, see :func:`_with_lone_surrogates`), ``invalid`` (not a 5-array of the right
    types, payload not an object, topic or event empty or longer than 255 characters).
    """
    raw = _check_size(data, max_size)
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _invalid_frame(raw, exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # What counts as invalid UTF-8 is decided here, by Python's strict codec, not by the
        # wording or type of the JSON library's error (which differ between its versions).
        problem = _not_utf8(raw)
        frame = None if problem is not None else _with_lone_surrogates(raw)
        if frame is not None:
            return frame
        raise problem or ProtocolError(Reason.INVALID_JSON, str(exc)) from None
    except RecursionError:
        raise ProtocolError(Reason.INVALID_JSON, "JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:  # defensive: no other exception may escape
        raise ProtocolError(Reason.INVALID_JSON, f"undecodable ({type(exc).__name__})") from None


def decode_binary(
    data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_SIZE
) -> BinaryFrame:
    """Decode one binary message from a client (a kind 0 push); raises only ProtocolError.

    Reasons: ``too_large``, ``unsupported`` (a kind other than push: clients never send
    replies or broadcasts), ``invalid`` (truncated header, empty topic or event),
    ``invalid_utf8`` (a name that is not UTF-8). The names are checked the way
    :class:`Frame` checks them; an empty ``join_ref`` or ``ref`` becomes ``None``.
    """
    if isinstance(data, str):
        raise ProtocolError(Reason.INVALID, "a binary message must be bytes")
    raw = _check_size(data, max_size)
    if len(raw) < 5:
        raise ProtocolError(Reason.INVALID, "binary message shorter than its 5-byte header")
    if raw[0] != _KIND_PUSH:
        raise ProtocolError(Reason.UNSUPPORTED, f"binary kind {raw[0]} is not a client push")
    sizes = raw[1], raw[2], raw[3], raw[4]
    end = 5 + sum(sizes)
    if len(raw) < end:
        raise ProtocolError(Reason.INVALID, "binary message shorter than its header says")
    names: list[str] = []
    offset = 5
    for size, field in zip(sizes, _FIELD_NAMES, strict=False):
        try:
            names.append(raw[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(Reason.INVALID_UTF8, f"{field} is not UTF-8") from None
        offset += size
    join_ref, ref, topic, event = names
    if not topic or not event:
        raise ProtocolError(Reason.INVALID, "binary push with an empty topic or event")
    return BinaryFrame(join_ref or None, ref or None, topic, event, raw[end:])


def is_binary(data: bytes) -> bool:
    """Whether encoded ``data`` is a binary frame (else it is JSON text, starting with ``[``)."""
    return data[:1] != b"["


# -- encoding -------------------------------------------------------------------------------


def _checked(payload: Payload) -> Payload:
    """``payload`` if it encodes as a JSON object; a programming error (TypeError) otherwise.

    Checked here so that no builder can put a non-object payload on the wire, which every
    client would choke on.
    """
    if type(payload) is dict or isinstance(payload, dict):
        return payload
    if isinstance(payload, msgspec.Struct):
        if payload.__struct_config__.array_like:
            raise TypeError(f"{type(payload).__name__} is array_like: not a JSON object")
        return payload
    if isinstance(payload, msgspec.Raw):
        if bytes(payload).lstrip()[:1] != b"{":
            raise TypeError("msgspec.Raw payload must hold one encoded JSON object")
        return payload
    raise TypeError(f"payload must be a dict, a Struct or a Raw JSON object, got {type(payload)}")


def _utf8(value: str | None, field: str) -> bytes:
    encoded = (value or "").encode("utf-8")
    if len(encoded) > MAX_NAME_LENGTH:
        raise ValueError(f"{field} longer than {MAX_NAME_LENGTH} bytes cannot be sent in binary")
    return encoded


def encode(frame: Frame) -> bytes:
    """Encode a frame to compact UTF-8 JSON (the inverse of :func:`decode`)."""
    return _encoder.encode(frame)


def reply(
    join_ref: str | None,
    ref: str | None,
    topic: str,
    status: Status,
    response: Payload | BinaryPayload,
) -> bytes:
    """A ``phx_reply`` to push ``ref``: payload ``{"status": ..., "response": ...}``.

    A binary ``response`` makes a binary reply (kind 1), which phoenix.js decodes to the same
    ``{status, response}`` shape with an ``ArrayBuffer`` response.
    """
    if type(response) is not dict and isinstance(response, bytes | bytearray | memoryview):
        jr, rf, tp, st = (
            _utf8(join_ref, "join_ref"),
            _utf8(ref, "ref"),
            _utf8(topic, "topic"),
            _utf8(status, "status"),
        )
        header = bytes((_KIND_REPLY, len(jr), len(rf), len(tp), len(st)))
        return b"".join((header, jr, rf, tp, st, response))
    body = {"status": status, "response": _checked(response)}
    return _encoder.encode((join_ref, ref, topic, PHX_REPLY, body))


def heartbeat_reply(ref: str | None) -> bytes:
    """The reply to a ``heartbeat``: ok with an empty response, ``join_ref`` null, as Phoenix."""
    return _encoder.encode((None, ref, PHOENIX_TOPIC, PHX_REPLY, _OK_EMPTY))


def push(
    topic: str, event: str, payload: Payload | BinaryPayload, join_ref: str | None = None
) -> bytes:
    """A server push to one channel instance: ``ref`` null, ``join_ref`` that instance's.

    A binary ``payload`` makes a binary push (kind 0, which carries no ref).
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        jr, tp, ev = _utf8(join_ref, "join_ref"), _utf8(topic, "topic"), _utf8(event, "event")
        header = bytes((_KIND_PUSH, len(jr), len(tp), len(ev)))
        return b"".join((header, jr, tp, ev, payload))
    return _encoder.encode((join_ref, None, topic, event, _checked(payload)))


def encode_broadcast(topic: str, event: str, payload: Payload | BinaryPayload) -> bytes:
    """A broadcast, encoded once and sent as the same bytes to every subscriber on this node.

    ``join_ref`` and ``ref`` are null, exactly as Phoenix's fastlane encodes a
    ``%Broadcast{}``. phoenix.js delivers it to the channel of that topic whatever its current
    ``join_ref``: ``Channel.isMember`` only drops a message whose ``join_ref`` is set *and*
    differs. The gateway must therefore send it only to connections where the topic is joined
    (``ConnectionProtocol.broadcast`` checks that).

    Pass a :class:`msgspec.Raw` to splice a payload already encoded (say, received from the
    broker) without parsing it; ``bytes`` make a binary broadcast (kind 2).
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        tp, ev = _utf8(topic, "topic"), _utf8(event, "event")
        return b"".join((bytes((_KIND_BROADCAST, len(tp), len(ev))), tp, ev, payload))
    return _encoder.encode((None, None, topic, event, _checked(payload)))


def error(join_ref: str | None, topic: str, reason: str = Reason.CHANNEL_CRASH) -> bytes:
    """A ``phx_error``: the channel instance crashed; phoenix.js rejoins it with backoff.

    ``ref`` equals ``join_ref`` and the payload is ``{"reason": "channel_crash"}``, as Phoenix
    1.8 sends (earlier versions sent ``{}``; clients pass it to ``onError`` untouched).
    """
    return _encoder.encode((join_ref, join_ref, topic, PHX_ERROR, {"reason": str(reason)}))


def close(join_ref: str | None, topic: str) -> bytes:
    """A ``phx_close``: the channel instance is closed for good; phoenix.js does not rejoin.

    ``ref`` equals ``join_ref``, payload ``{}``, as Phoenix's ``encode_close``.
    """
    return _encoder.encode((join_ref, join_ref, topic, PHX_CLOSE, _EMPTY))
