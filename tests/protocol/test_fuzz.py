"""Fuzzing: decoding raises only ProtocolError; the state machine never raises and never emits
a frame that phoenix.js could not decode."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol import phoenix_js
from whispr.protocol import frames
from whispr.protocol.channels import (
    ConnectionProtocol,
    JoinRequested,
    LeaveRequested,
    ProtocolViolation,
    PushReceived,
)
from whispr.protocol.frames import BinaryFrame, Frame, ProtocolError, Reason

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
refs = st.none() | st.sampled_from(["1", "2", "3"]) | st.text(max_size=8)
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
binary_pushes = st.builds(
    phoenix_js.binary_encode,
    st.sampled_from(["", "1", "2"]),
    st.sampled_from(["", "1", "9"]),
    topics.filter(lambda t: len(t.encode()) <= 255),
    events.filter(lambda e: len(e.encode()) <= 255),
    st.binary(max_size=20),
)


def decode_or_error(data: bytes | str, max_size: int = 4096) -> Frame | ProtocolError:
    """Decode; any exception other than ProtocolError fails the test."""
    result: Frame | ProtocolError
    try:
        result = frames.decode(data, max_size=max_size)
    except ProtocolError as exc:
        result = exc
    if isinstance(result, ProtocolError):
        assert isinstance(result.reason, Reason)
        assert result.close_code in (1003, 1007, 1009)
        assert not result.answerable or result.reason is Reason.INVALID
        return result
    assert isinstance(result, Frame)
    assert result.join_ref is None or isinstance(result.join_ref, str)
    assert result.ref is None or isinstance(result.ref, str)
    assert isinstance(result.topic, str)
    assert 0 < len(result.topic) <= 255
    assert isinstance(result.event, str)
    assert 0 < len(result.event) <= 255
    assert isinstance(result.payload, dict)
    return result


@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    decode_or_error(data)


@given(st.text(max_size=300))
def test_arbitrary_text(data: str) -> None:
    decode_or_error(data)


@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    decode_or_error(msgspec.json.encode(value))


@given(five_arrays)
def test_five_arrays_of_anything(value: list[Any]) -> None:
    decode_or_error(msgspec.json.encode(value), max_size=100_000)


@given(valid_frames, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=3))
def test_invalid_utf8_spliced_in(frame: Frame, at: int, junk: bytes) -> None:
    data = frames.encode(frame)
    at = min(at, len(data))
    result = decode_or_error(data[:at] + b"\xff" + junk + data[at:])
    assert isinstance(result, ProtocolError)


@given(st.integers(min_value=1, max_value=100_000))
def test_huge_messages(extra: int) -> None:
    data = frames.encode_broadcast("t", "e", {"x": "a" * (1000 + extra)})
    with pytest.raises(ProtocolError) as info:
        frames.decode(data, max_size=1000)
    assert info.value.reason is Reason.TOO_LARGE
    with pytest.raises(ProtocolError, match="too_large"):
        frames.decode_binary(b"\x00" * (1001 + extra), max_size=1000)


@given(st.binary(max_size=300))
def test_arbitrary_binary(data: bytes) -> None:
    result: BinaryFrame | ProtocolError
    try:
        result = frames.decode_binary(data)
    except ProtocolError as exc:
        result = exc
    if isinstance(result, ProtocolError):
        assert isinstance(result.reason, Reason)
    else:
        assert result.topic
        assert result.event


@given(valid_frames)
def test_roundtrip_text(frame: Frame) -> None:
    assert frames.decode(frames.encode(frame), max_size=1_000_000) == frame
    assert frames.decode(frames.encode(frame).decode(), max_size=1_000_000) == frame
    # What phoenix.js's JSON.stringify would send decodes the same way.
    as_js = json.dumps([frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload])
    assert frames.decode(as_js, max_size=1_000_000) == frame


@given(binary_pushes)
def test_roundtrip_binary_push(data: bytes) -> None:
    frame = frames.decode_binary(data)
    assert (
        phoenix_js.binary_encode(
            frame.join_ref or "", frame.ref or "", frame.topic, frame.event, frame.payload
        )
        == data
    )


def assert_phoenix_js_can_decode(data: bytes) -> dict[str, Any]:
    """The checks phoenix.js's decode and dispatch rely on, for one server message."""
    if frames.is_binary(data):
        message = phoenix_js.decode(data)
    else:
        message = phoenix_js.decode(data.decode("utf-8"))
        assert frames.decode(data, max_size=10**9)  # a valid frame by our own rules too
        assert isinstance(message["payload"], dict)
    assert message["join_ref"] is None or isinstance(message["join_ref"], str)
    assert message["ref"] is None or isinstance(message["ref"], str)
    if message["event"] == "phx_reply":
        assert message["payload"]["status"] in ("ok", "error")
        assert isinstance(message["payload"]["response"], dict | bytes)
    return message


# What a client does most of the time: control events and pushes on a few topics, with a few
# join_refs so that joins, rejoins, stale refs and leaves meet each other.
plausible_frames = st.builds(
    Frame,
    st.sampled_from([None, "1", "2"]),
    st.sampled_from([None, "1", "2", "3"]),
    st.sampled_from(["user:1", "conversation:1", "phoenix", "x:1"]),
    st.sampled_from(["phx_join", "phx_leave", "heartbeat", "new_msg", "phx_reply"]),
    st.just({}) | payloads,
).map(lambda f: (frames.encode(f), False))
garbage = st.one_of(
    st.tuples(st.binary(max_size=60), st.booleans()),
    st.tuples(five_arrays.map(msgspec.json.encode), st.just(False)),
    st.tuples(st.text(max_size=60), st.booleans()),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes | str, bool]:
    """Mostly plausible client frames, so that sequences reach deep states; sometimes
    arbitrary valid frames, binary pushes, or garbage (which usually ends the sequence)."""
    kind = draw(st.integers(min_value=0, max_value=19))
    if kind == 0:
        return draw(garbage)
    if kind == 1:
        return draw(binary_pushes), True
    if kind == 2:
        return frames.encode(draw(valid_frames)), False
    return draw(plausible_frames)


actions = st.sampled_from(
    [
        *("none", "accept", "accept", "accept", "reject", "crash"),
        *("reply", "reply_bin", "push", "close", "broadcast"),
    ]
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(
    st.lists(
        st.tuples(messages(), actions, st.sampled_from([None, None, "1", "2", "x"])),
        min_size=5,
        max_size=40,
    )
)
def test_state_machine_never_raises(steps: list[tuple[tuple[Any, bool], str, str | None]]) -> None:
    proto = ConnectionProtocol(max_topics=2, max_size=2000)
    broadcast = frames.encode_broadcast("user:1", "ev", {"n": 1})
    for (data, binary), action, join_ref in steps:
        was_closed = proto.closed
        proto.receive_data(data, binary=binary)
        out, events = proto.data_to_send(), proto.events_received()
        if was_closed:
            assert (out, events) == ([], [])
        for event in events:
            assert isinstance(
                event, JoinRequested | PushReceived | LeaveRequested | ProtocolViolation
            )
            if isinstance(event, ProtocolViolation):
                assert proto.closed
                assert len(event.message.encode()) <= 123
                assert event is events[-1]
        for sent in out:
            assert_phoenix_js_can_decode(sent)
        answers: list[bytes | None] = []
        for topic in ["user:1", "conversation:1", *proto.joined_topics()]:
            if action == "accept":
                answers.append(proto.accept_join(topic, {"ok": True}, join_ref=join_ref))
            elif action == "reject":
                answers.append(proto.reject_join(topic, "forbidden", join_ref=join_ref))
            elif action == "crash":
                answers.append(proto.channel_crashed(topic, join_ref=join_ref))
            elif action == "reply":
                answers.append(proto.reply(topic, "1", "ok", {}, join_ref=join_ref))
            elif action == "reply_bin":
                answers.append(proto.reply(topic, "1", "error", b"\x00", join_ref=join_ref))
            elif action == "push":
                answers.append(proto.push(topic, "ev", {"a": [1]}, join_ref=join_ref))
            elif action == "close":
                answers.append(proto.close_channel(topic, join_ref=join_ref))
            elif action == "broadcast":
                answers.append(proto.broadcast(topic, broadcast))
        for answer in answers:
            if answer is not None:
                assert not proto.closed
                assert_phoenix_js_can_decode(answer)
        assert len(proto.joined_topics()) <= 2
        assert all(proto.topic_state(t) == "joined" for t in proto.joined_topics())
