"""Fuzzing: decode raises only ProtocolError; the state machine never raises."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whispr.protocol import frames
from whispr.protocol.channels import ConnectionProtocol, SendFrame, Violation
from whispr.protocol.frames import Frame, ProtocolError

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
names = st.text(min_size=1, max_size=20)
refs = st.none() | st.text(max_size=8)
topics = st.sampled_from(["phoenix", "user:1", "conversation:1", "notification:1"]) | names
events = (
    st.sampled_from(
        ["phx_join", "phx_leave", "heartbeat", "phx_reply", "phx_close", "phx_error", "new_msg"]
    )
    | names
)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
valid_frames = st.builds(Frame, refs, refs, topics, events, payloads)
any_field = json_values | st.text(max_size=300)
five_arrays = st.lists(any_field, min_size=5, max_size=5)


def _decode_or_protocol_error(data: bytes | str, max_size: int = 4096) -> None:
    try:
        frame: Frame | ProtocolError = frames.decode(data, max_size=max_size)
    except ProtocolError as exc:
        frame = exc
    if isinstance(frame, ProtocolError):
        assert frame.close_code in (1003, 1007, 1009)
    else:
        assert isinstance(frame, Frame)


@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_or_protocol_error(data)


@given(st.text(max_size=300))
def test_arbitrary_text(data: str) -> None:
    _decode_or_protocol_error(data)


@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _decode_or_protocol_error(msgspec.json.encode(value))


@given(five_arrays)
def test_wrong_typed_five_arrays(value: list[Any]) -> None:
    _decode_or_protocol_error(msgspec.json.encode(value), max_size=100_000)


@given(valid_frames, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=3))
def test_invalid_utf8_spliced(frame: Frame, at: int, junk: bytes) -> None:
    data = frames.encode(frame)
    at = min(at, len(data))
    _decode_or_protocol_error(data[:at] + b"\xff" + junk + data[at:])


@given(st.integers(min_value=1, max_value=5000))
def test_huge_frames(extra: int) -> None:
    data = frames.broadcast("t", "e", {"x": "a" * (1000 + extra)})
    with pytest.raises(ProtocolError, match="too_large"):
        frames.decode(data, max_size=1000)


def test_deep_nesting() -> None:
    for depth in (100, 5000, 100_000):
        _decode_or_protocol_error(
            b'[null,null,"t","e",{"a":' + b"[" * depth + b"]" * depth + b"}]", max_size=1_000_000
        )


@given(valid_frames)
def test_roundtrip(frame: Frame) -> None:
    assert frames.decode(frames.encode(frame), max_size=1_000_000) == frame
    assert frames.decode(frames.encode(frame).decode(), max_size=1_000_000) == frame


messages = (
    valid_frames.map(frames.encode)
    | st.binary(max_size=100)
    | five_arrays.map(msgspec.json.encode)
    | st.text(max_size=100)
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            messages,
            st.booleans(),
            st.sampled_from(["none", "accept", "reject", "crash", "reply", "close"]),
        ),
        max_size=30,
    )
)
def test_state_machine_never_raises(steps: list[tuple[bytes | str, bool, str]]) -> None:
    proto = ConnectionProtocol(max_topics=3, max_size=2000)
    for data, binary, action in steps:
        out = proto.receive(data, binary=binary)
        assert all(not isinstance(e, SendFrame) or e.data for e in out)
        if any(isinstance(e, Violation) for e in out):
            assert proto.closed
        for topic in ["user:1", "conversation:1", *proto.joined_topics()]:
            if action == "accept":
                proto.accept_join(topic, {})
            elif action == "reject":
                proto.reject_join(topic, {"reason": "forbidden"})
            elif action == "crash":
                proto.channel_crashed(topic)
            elif action == "reply":
                proto.reply(topic, "1", "ok", {})
            elif action == "close":
                proto.close_channel(topic)
        assert len(proto.joined_topics()) <= 3
        for sent in (e.data for e in out if isinstance(e, SendFrame)):
            frames.decode(sent, max_size=1_000_000)  # everything we send decodes
