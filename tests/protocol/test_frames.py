"""Frame codec: exact bytes in and out, every failure a ProtocolError, binary as serializer.js."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.protocol import phoenix_js
from whispr.protocol import frames
from whispr.protocol.frames import BinaryFrame, CloseCode, Frame, ProtocolError, Reason


class Message(msgspec.Struct):
    body: str
    seq: int


class Pair(msgspec.Struct, array_like=True):
    a: int
    b: int


# -- decoding text -----------------------------------------------------------------------------


def test_decode_what_phoenix_js_sends() -> None:
    # JSON.stringify([join_ref, ref, topic, event, payload]) of channel.js's join push.
    data = b'["3","3","conversation:42","phx_join",{"last_seq":7}]'
    assert frames.decode(data) == Frame("3", "3", "conversation:42", "phx_join", {"last_seq": 7})
    # The heartbeat has no join_ref: JSON.stringify turns undefined into null.
    frame = frames.decode('[null,"7","phoenix","heartbeat",{}]')
    assert frame == Frame(None, "7", "phoenix", "heartbeat", {})


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_decode_accepts_bytes_like_and_str(wrap: Any) -> None:
    data = b'["1","2","t","e",{"x":"\xc3\xa9"}]'
    assert frames.decode(wrap(data)) == Frame("1", "2", "t", "e", {"x": "\u00e9"})


def test_encode_is_compact_array() -> None:
    assert frames.encode(Frame("1", "2", "t", "e", {"foo": 1})) == b'["1","2","t","e",{"foo":1}]'


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.INVALID_JSON),
        (b"not json", Reason.INVALID_JSON),
        (b'["1","2","t","e",{}', Reason.INVALID_JSON),
        (b'["1","2","t","e",{}] x', Reason.INVALID_JSON),
        (b'["\\ud800","2","t","e",{}]', Reason.INVALID_JSON),
        (b'["1","2","t\xff","e",{}]', Reason.INVALID_UTF8),
        (b'{"topic":"t"}', Reason.INVALID),
        (b'["1","2","t","e"]', Reason.INVALID),
        (b'["1","2","t","e",{},1]', Reason.INVALID),
        (b'["1","2","t","e",[]]', Reason.INVALID),
        (b'["1","2","t","e",null]', Reason.INVALID),
        (b'["1","2","t","e","hi"]', Reason.INVALID),
        (b'[1,"2","t","e",{}]', Reason.INVALID),
        (b'["1",2,"t","e",{}]', Reason.INVALID),
        (b'["1","2",null,"e",{}]', Reason.INVALID),
        (b'["1","2","","e",{}]', Reason.INVALID),
        (b'["1","2","t","",{}]', Reason.INVALID),
        (b'["1","2","' + b"t" * 256 + b'","e",{}]', Reason.INVALID),
        (b'["1","2","t","' + b"e" * 256 + b'",{}]', Reason.INVALID),
        (b'["' + b"r" * 256 + b'","2","t","e",{}]', Reason.INVALID),
        (b"[1,2,3,4,5]", Reason.INVALID),
        (b"[" * 100_000 + b"]" * 100_000, Reason.INVALID),
        (b'["1","2","t","e",{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}]", Reason.INVALID_JSON),
    ],
)
def test_decode_rejects(data: bytes, reason: Reason) -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(data, max_size=1_000_000)
    assert info.value.reason is reason
    expected = CloseCode.INVALID_PAYLOAD
    assert info.value.close_code is expected


def test_names_of_255_are_fine() -> None:
    long = "t" * 255
    frame = frames.decode(json.dumps([long, long, long, long, {}]).encode())
    assert frame == Frame(long, long, long, long, {})


def test_invalid_frame_with_readable_envelope_is_answerable() -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(b'["3","5","conversation:1","new_msg","hello"]')
    error = info.value
    assert (error.reason, error.join_ref, error.ref, error.topic) == (
        Reason.INVALID,
        "3",
        "5",
        "conversation:1",
    )
    assert error.answerable
    assert "payload" in error.message  # the field is named, not "$[4]"
    assert "hello" not in error.message  # the input is not echoed


def test_invalid_frame_answerable_without_valid_join_ref() -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(b'[3,"5","t","e",{}]')
    assert (info.value.join_ref, info.value.ref, info.value.answerable) == (None, "5", True)


@pytest.mark.parametrize(
    "data",
    [
        b'["1",5,"t","e",[]]',  # an integer ref could not be echoed as sent
        b'["1",null,"t","e",[]]',  # nothing to reply to
        b'["1","5","","e",[]]',  # no topic to reply on
        b'["1","5"]',
        b"[]",
        b'{"ref":"5"}',
    ],
)
def test_invalid_frame_not_answerable(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(data)
    assert not info.value.answerable
    assert str(info.value).startswith("invalid: ")


def test_size_checked_before_parsing() -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(b"x" * 101, max_size=100)  # not even JSON: the size wins
    assert info.value.reason is Reason.TOO_LARGE
    assert info.value.close_code is CloseCode.MESSAGE_TOO_BIG
    with pytest.raises(ProtocolError, match="too_large"):
        frames.decode("\u00e9" * 60, max_size=100)  # 60 characters, 120 bytes
    with pytest.raises(ProtocolError, match="too_large"):
        frames.decode(memoryview(b"x" * 101), max_size=100)
    assert frames.decode(b'["1","2","t","e",{}]', max_size=20).topic == "t"  # exactly 20


def test_lone_surrogate_in_str() -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode('["\ud800","2","t","e",{}]')
    assert info.value.reason is Reason.INVALID_UTF8
    assert info.value.close_code is CloseCode.INVALID_PAYLOAD


# Byte sequences that strict UTF-8 refuses: a stray continuation byte, a truncated sequence,
# an overlong form, an encoded surrogate (CESU-8), a code point above U+10FFFF, 0xFF.
_NOT_UTF8 = st.sampled_from(
    [b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"]
)


@given(
    field=st.integers(min_value=0, max_value=4),
    before=st.text(st.characters(codec="utf-8", exclude_characters='"\\'), max_size=8),
    bad=_NOT_UTF8,
)
def test_invalid_utf8_anywhere_in_a_string_is_invalid_utf8(
    field: int, before: str, bad: bytes
) -> None:
    # The protocol core decides what invalid UTF-8 is: the reason does not depend on which
    # field holds it or on how the JSON library words its error.
    parts = [b'"1"', b'"2"', b'"t"', b'"e"', b'{"k":"v"}']
    text = before.encode() + bad
    parts[field] = b'{"k":"' + text + b'"}' if field == 4 else b'"' + text + b'"'
    with pytest.raises(ProtocolError) as info:
        frames.decode(b"[" + b",".join(parts) + b"]")
    assert info.value.reason is Reason.INVALID_UTF8
    assert info.value.close_code is CloseCode.INVALID_PAYLOAD


def test_not_bytes_at_all() -> None:
    with pytest.raises(ProtocolError, match="invalid"):
        frames.decode(12)  # type: ignore[arg-type]


# -- building server frames ------------------------------------------------------------------


def test_reply() -> None:
    assert frames.reply("1", "2", "user:1", "ok", {}) == (
        b'["1","2","user:1","phx_reply",{"status":"ok","response":{}}]'
    )
    assert frames.reply(None, "2", "t", "error", {"reason": "forbidden"}) == (
        b'[null,"2","t","phx_reply",{"status":"error","response":{"reason":"forbidden"}}]'
    )


def test_heartbeat_reply() -> None:
    assert frames.heartbeat_reply("9") == (
        b'[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]'
    )


def test_push() -> None:
    assert frames.push("user:1", "ev", {"a": 1}, "4") == b'["4",null,"user:1","ev",{"a":1}]'
    assert frames.push("user:1", "ev", {}) == b'[null,null,"user:1","ev",{}]'


def test_error_and_close() -> None:
    assert frames.error("4", "user:1") == (
        b'["4","4","user:1","phx_error",{"reason":"channel_crash"}]'
    )
    assert frames.close("4", "user:1") == b'["4","4","user:1","phx_close",{}]'


def test_broadcast_has_null_refs() -> None:
    assert frames.encode_broadcast("conversation:1", "new_msg", {"id": 5}) == (
        b'[null,null,"conversation:1","new_msg",{"id":5}]'
    )


def test_broadcast_of_struct_and_raw_equal_the_dict_one() -> None:
    message = Message(body='h\u00e9llo "x"\n', seq=3)
    as_dict = frames.encode_broadcast("c:1", "new_msg", msgspec.to_builtins(message))
    assert frames.encode_broadcast("c:1", "new_msg", message) == as_dict
    raw = msgspec.Raw(msgspec.json.encode(message))
    assert frames.encode_broadcast("c:1", "new_msg", raw) == as_dict
    assert frames.decode(as_dict).payload == {"body": 'h\u00e9llo "x"\n', "seq": 3}


@pytest.mark.parametrize(
    "payload", [Pair(1, 2), msgspec.Raw(b"[1]"), msgspec.Raw(b""), [1], "x", None, 3]
)
def test_non_object_payloads_are_refused(payload: Any) -> None:
    with pytest.raises(TypeError):
        frames.encode_broadcast("t", "e", payload)
    with pytest.raises(TypeError):
        frames.push("t", "e", payload, "1")
    with pytest.raises(TypeError):
        frames.reply("1", "2", "t", "ok", payload)


def test_raw_object_with_leading_blanks_is_fine() -> None:
    data = frames.encode_broadcast("t", "e", msgspec.Raw(b' \n{"a":1}'))
    assert frames.decode(data).payload == {"a": 1}


def test_server_frames_decode_with_phoenix_js() -> None:
    for data in [
        frames.reply("1", "2", "t", "ok", {"x": [1]}),
        frames.heartbeat_reply("3"),
        frames.push("t", "e", {"y": None}, "1"),
        frames.encode_broadcast("t", "e", {}),
        frames.error("1", "t"),
        frames.close("1", "t"),
    ]:
        assert not frames.is_binary(data)
        msg = phoenix_js.decode(data.decode())
        assert frames.encode(Frame(**msg)) == data


# -- binary ----------------------------------------------------------------------------------


def test_decode_binary_push_from_phoenix_js() -> None:
    data = phoenix_js.binary_encode("3", "12", "conversation:\u00e9", "upload", b"\x00\xff\x01")
    assert frames.decode_binary(data) == BinaryFrame(
        "3", "12", "conversation:\u00e9", "upload", b"\x00\xff\x01"
    )
    assert frames.decode_binary(bytearray(data)) == frames.decode_binary(memoryview(data))
    empty = phoenix_js.binary_encode("", "", "t", "e", b"")
    assert frames.decode_binary(empty) == BinaryFrame(None, None, "t", "e", b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.INVALID),
        (b"\x00\x01\x01\x01", Reason.INVALID),
        (b"\x00\x01\x01\x01\x01abc", Reason.INVALID),  # header announces 4 name bytes, 3 there
        (b"\x01\x00\x00\x01\x01te", Reason.UNSUPPORTED),  # a reply: server to client only
        (b"\x02\x01\x01te", Reason.UNSUPPORTED),
        (b"\x07\x00\x00\x01\x01te", Reason.UNSUPPORTED),
        (b"\x00\x00\x00\x00\x01e", Reason.INVALID),  # empty topic
        (b"\x00\x00\x00\x01\x00t", Reason.INVALID),  # empty event
        (b"\x00\x00\x00\x01\x01\xffe", Reason.INVALID_UTF8),
        (b"\x00" * 70_000, Reason.TOO_LARGE),
    ],
)
def test_decode_binary_rejects(data: bytes, reason: Reason) -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode_binary(data)
    assert info.value.reason is reason


def test_decode_binary_refuses_str() -> None:
    with pytest.raises(ProtocolError, match="invalid"):
        frames.decode_binary("\x00\x00\x00\x01\x01te")  # type: ignore[arg-type]


def test_binary_server_frames_decode_with_phoenix_js() -> None:
    reply = frames.reply("3", "12", "t:\u00e9", "ok", b"\x01\x02")
    assert phoenix_js.decode(reply) == {
        "join_ref": "3",
        "ref": "12",
        "topic": "t:\u00e9",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": b"\x01\x02"},
    }
    push = frames.push("t", "blob", memoryview(b"\x00"), "3")
    assert phoenix_js.decode(push) == {
        "join_ref": "3",
        "ref": None,
        "topic": "t",
        "event": "blob",
        "payload": b"\x00",
    }
    broadcast = frames.encode_broadcast("t", "blob", bytearray(b"data"))
    assert phoenix_js.decode(broadcast) == {
        "join_ref": None,
        "ref": None,
        "topic": "t",
        "event": "blob",
        "payload": b"data",
    }
    assert all(frames.is_binary(d) for d in (reply, push, broadcast))


def test_binary_names_longer_than_255_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="topic"):
        frames.encode_broadcast("\u00e9" * 128, "e", b"")  # 256 bytes
    with pytest.raises(ValueError, match="event"):
        frames.push("t", "e" * 256, b"", "1")


def test_reason_values_on_the_wire() -> None:
    assert Reason.UNMATCHED_TOPIC.value == "unmatched topic"
    assert Reason.TOO_MANY_CHANNELS.value == "too many channels joined"
    assert Reason.JOIN_CRASHED.value == "join crashed"
    assert msgspec.json.encode({"reason": Reason.INVALID}) == b'{"reason":"invalid"}'


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"x\\udbffy", b"\\udc00\\ud800"])
def test_a_lone_surrogate_escape_in_the_payload_is_decoded(escape: bytes) -> None:
    # JSON.stringify writes one for a string cut in the middle of a pair: the payload reaches
    # its handler (which refuses the string naming its field), the connection stays open.
    frame = frames.decode(b'["1","2","t","e",{"content":"' + escape + b'","n":[1.5]}]')
    content = frame.payload["content"]
    assert any(0xD800 <= ord(c) <= 0xDFFF for c in content)
    assert frame.payload["n"] == [1.5]
    assert (frame.ref, frame.topic, frame.event) == ("2", "t", "e")


@pytest.mark.parametrize(
    "data",
    [
        b'["1","\\ud800","t","e",{"k":"\\ud800"}]',  # in the ref, echoed by the reply
        b'["1","2","t\\udc00","e",{}]',  # in the topic
        b'["1","2","t","e",{"k":"\\ud800","n":NaN}]',  # and a constant JSON does not have
        b'["1","2","t","e",{"k":"\\ud800","n":1e400}]',  # and a number out of range
        b'["1","2","t","e",{"k":"\\ud800"}',  # and truncated
    ],
)
def test_a_lone_surrogate_escape_elsewhere_is_still_invalid_json(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(data)
    assert info.value.reason is Reason.INVALID_JSON
