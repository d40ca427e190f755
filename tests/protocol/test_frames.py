"""Frame codec: exact bytes in and out, every failure a ProtocolError."""

from __future__ import annotations

import pytest

from whispr.protocol import frames
from whispr.protocol.frames import Frame, ProtocolError


def test_decode_js_client_join() -> None:
    data = b'["3","3","conversation:42","phx_join",{"token":"x"}]'
    assert frames.decode(data, max_size=1000) == Frame(
        "3", "3", "conversation:42", "phx_join", {"token": "x"}
    )


def test_decode_str_and_null_refs() -> None:
    frame = frames.decode('[null,"7","phoenix","heartbeat",{}]', max_size=1000)
    assert frame == Frame(None, "7", "phoenix", "heartbeat", {})


def test_encode_is_compact_array() -> None:
    frame = Frame("1", "2", "t", "e", {"foo": 1})
    assert frames.encode(frame) == b'["1","2","t","e",{"foo":1}]'


def test_reply_bytes() -> None:
    assert frames.reply("1", "2", "user:1", "ok", {}) == (
        b'["1","2","user:1","phx_reply",{"status":"ok","response":{}}]'
    )


def test_broadcast_bytes() -> None:
    assert frames.broadcast("conversation:1", "new_msg", {"id": 5}) == (
        b'[null,null,"conversation:1","new_msg",{"id":5}]'
    )


def test_broadcast_raw_matches_broadcast() -> None:
    payload = {"body": 'h\u00e9llo "x"', "n": [1, 2]}
    import msgspec

    raw = frames.broadcast_raw("conversation:1", "new_msg", msgspec.json.encode(payload))
    assert raw == frames.broadcast("conversation:1", "new_msg", payload)
    assert frames.decode(raw, max_size=10_000).payload == payload


def test_broadcast_raw_refuses_non_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        frames.broadcast_raw("t", "e", b"[1]")


def test_error_and_close_bytes() -> None:
    assert frames.error("4", "user:1") == b'["4","4","user:1","phx_error",{}]'
    assert frames.close("4", "user:1") == b'["4","4","user:1","phx_close",{}]'


def test_push_bytes() -> None:
    assert frames.push("4", "user:1", "ev", {"a": 1}) == b'["4",null,"user:1","ev",{"a":1}]'


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "invalid_json"),
        (b"not json", "invalid_json"),
        (b'["1","2","t","e",{}', "invalid_json"),
        (b'["1","2","t","e",{}] x', "invalid_json"),
        (b'["\\ud800","2","t","e",{}]', "invalid_json"),
        (b'["1","2","t\xff","e",{}]', "invalid_utf8"),
        (b'{"topic":"t"}', "invalid_frame"),
        (b'["1","2","t","e"]', "invalid_frame"),
        (b'["1","2","t","e",{},1]', "invalid_frame"),
        (b'["1","2","t","e",[]]', "invalid_frame"),
        (b'["1","2","t","e",null]', "invalid_frame"),
        (b'[1,"2","t","e",{}]', "invalid_frame"),
        (b'["1","2",null,"e",{}]', "invalid_frame"),
        (b'["1","2","","e",{}]', "invalid_frame"),
        (b'["1","2","t","",{}]', "invalid_frame"),
        (b'["1","2","' + b"t" * 256 + b'","e",{}]', "invalid_frame"),
        (b'["1","2","t","' + b"e" * 256 + b'",{}]', "invalid_frame"),
        (b"[1,2,3,4,5]", "invalid_frame"),
    ],
)
def test_decode_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode(data, max_size=10_000)
    assert info.value.reason == reason


def test_topic_of_255_is_fine() -> None:
    frame = frames.decode(b'["1","2","' + b"t" * 255 + b'","e",{}]', max_size=10_000)
    assert len(frame.topic) == 255


def test_size_checked_before_parsing() -> None:
    data = b"x" * 101  # not even JSON: the size wins
    with pytest.raises(ProtocolError) as info:
        frames.decode(data, max_size=100)
    assert info.value.reason == "too_large"
    assert info.value.close_code == 1009
    with pytest.raises(ProtocolError, match="too_large"):
        frames.decode("\u00e9" * 60, max_size=100)  # 60 chars, 120 bytes


def test_lone_surrogate_in_str() -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode('["\ud800","2","t","e",{}]', max_size=1000)
    assert info.value.reason == "invalid_utf8"
    assert info.value.close_code == 1007


def test_binary_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        frames.decode_binary(b"\x00\x01\x01\x01\x01a1te")
    assert info.value.reason == "unsupported"
    assert info.value.close_code == 1003
