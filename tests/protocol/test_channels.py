"""The channel state machine, driven with frames as the phoenix JS client sends them."""

from __future__ import annotations

from typing import Any

import msgspec

from whispr.protocol.channels import (
    ConnectionProtocol,
    JoinRequested,
    LeaveRequested,
    PushReceived,
    SendFrame,
    Violation,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> bytes:
    return msgspec.json.encode([join_ref, ref, topic, event, payload])


def joined(proto: ConnectionProtocol, topic: str = "conversation:1", ref: str = "1") -> None:
    events = proto.receive(frame(ref, ref, topic, "phx_join", {}))
    assert events == [JoinRequested(topic, ref, ref, {})]
    assert proto.accept_join(topic, {}, join_ref=ref)


def test_heartbeat_replied_and_updates_last_seen() -> None:
    clock = Clock()
    proto = ConnectionProtocol(clock=clock, heartbeat_timeout=90)
    clock.now = 1050.0
    events = proto.receive(frame(None, "5", "phoenix", "heartbeat", {}))
    assert events == [SendFrame(b'[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]')]
    assert proto.last_seen == 1050.0
    assert not proto.tick(1140.0)
    assert proto.tick(1140.5)


def test_tick_without_any_frame() -> None:
    clock = Clock()
    proto = ConnectionProtocol(clock=clock, heartbeat_timeout=90)
    assert not proto.tick(1090.0)
    assert proto.tick(1091.0)


def test_other_event_on_phoenix_topic_is_unmatched() -> None:
    proto = ConnectionProtocol()
    assert proto.receive(frame(None, "1", "phoenix", "x", {})) == [
        SendFrame(
            b'[null,"1","phoenix","phx_reply",'
            b'{"status":"error","response":{"reason":"unmatched topic"}}]'
        )
    ]


def test_join_accept_push_reply() -> None:
    proto = ConnectionProtocol()
    events = proto.receive(frame("3", "3", "conversation:1", "phx_join", {"a": 1}))
    assert events == [JoinRequested("conversation:1", "3", "3", {"a": 1})]
    assert proto.topic_state("conversation:1") == "joining"
    assert not proto.is_joined("conversation:1")
    assert proto.accept_join("conversation:1", {"ok": True}) == (
        b'["3","3","conversation:1","phx_reply",{"status":"ok","response":{"ok":true}}]'
    )
    assert proto.is_joined("conversation:1")
    assert proto.joined_topics() == {"conversation:1": "3"}
    # A second accept has nothing to answer.
    assert proto.accept_join("conversation:1", {}) == b""

    events = proto.receive(frame("3", "4", "conversation:1", "new_msg", {"body": "hi"}))
    assert events == [PushReceived("conversation:1", "new_msg", "3", "4", {"body": "hi"})]
    assert proto.reply("conversation:1", "4", "ok", {"id": 9}) == (
        b'["3","4","conversation:1","phx_reply",{"status":"ok","response":{"id":9}}]'
    )
    assert proto.push("conversation:1", "typing", {}) == (
        b'["3",null,"conversation:1","typing",{}]'
    )


def test_reject_join_forgets_topic() -> None:
    proto = ConnectionProtocol()
    proto.receive(frame("1", "1", "user:2", "phx_join", {}))
    assert proto.reject_join("user:2", {"reason": "forbidden"}) == (
        b'["1","1","user:2","phx_reply",{"status":"error","response":{"reason":"forbidden"}}]'
    )
    assert proto.topic_state("user:2") is None
    assert proto.reject_join("user:2", {"reason": "forbidden"}) == b""


def test_push_to_unjoined_topic() -> None:
    proto = ConnectionProtocol()
    expected = SendFrame(
        b'[null,"2","user:1","phx_reply",'
        b'{"status":"error","response":{"reason":"unmatched topic"}}]'
    )
    assert proto.receive(frame("1", "2", "user:1", "ev", {})) == [expected]
    # Still joining: also unmatched (the JS client buffers pushes until joined).
    proto.receive(frame("1", "1", "user:1", "phx_join", {}))
    assert proto.receive(frame("1", "2", "user:1", "ev", {})) == [expected]


def test_push_with_stale_join_ref() -> None:
    proto = ConnectionProtocol()
    joined(proto, "user:1", "5")
    assert proto.receive(frame("4", "6", "user:1", "ev", {})) == [
        SendFrame(
            b'[null,"6","user:1","phx_reply",'
            b'{"status":"error","response":{"reason":"unmatched topic"}}]'
        )
    ]


def test_leave() -> None:
    proto = ConnectionProtocol()
    joined(proto, "user:1", "1")
    events = proto.receive(frame("1", "2", "user:1", "phx_leave", {}))
    assert events == [
        SendFrame(b'["1","2","user:1","phx_reply",{"status":"ok","response":{}}]'),
        SendFrame(b'["1","1","user:1","phx_close",{}]'),
        LeaveRequested("user:1", "1", "2"),
    ]
    assert not proto.is_joined("user:1")
    assert proto.reply("user:1", "3", "ok", {}) == b""
    assert proto.push("user:1", "e", {}) == b""


def test_leave_while_joining_drops_late_accept() -> None:
    proto = ConnectionProtocol()
    proto.receive(frame("1", "1", "user:1", "phx_join", {}))
    events = proto.receive(frame("1", "2", "user:1", "phx_leave", {}))
    assert isinstance(events[-1], LeaveRequested)
    assert proto.accept_join("user:1", {}) == b""


def test_duplicate_join_closes_old() -> None:
    proto = ConnectionProtocol()
    joined(proto, "user:1", "1")
    events = proto.receive(frame("7", "7", "user:1", "phx_join", {}))
    assert events == [
        SendFrame(b'["1","1","user:1","phx_close",{}]'),
        LeaveRequested("user:1", "1", None),
        JoinRequested("user:1", "7", "7", {}),
    ]
    # A late answer for the superseded join is dropped; the new one goes through.
    assert proto.accept_join("user:1", {}, join_ref="1") == b""
    assert proto.accept_join("user:1", {}, join_ref="7")
    assert proto.reply("user:1", "8", "ok", {}, join_ref="1") == b""
    assert proto.reply("user:1", "8", "ok", {}, join_ref="7")


def test_channel_crashed() -> None:
    proto = ConnectionProtocol()
    joined(proto, "user:1", "1")
    assert proto.channel_crashed("user:1") == b'["1","1","user:1","phx_error",{}]'
    assert proto.topic_state("user:1") is None
    assert proto.channel_crashed("user:1") == b""
    # The client rejoins with a new join_ref.
    joined(proto, "user:1", "9")


def test_channel_crashed_while_joining() -> None:
    proto = ConnectionProtocol()
    proto.receive(frame("1", "1", "user:1", "phx_join", {}))
    assert proto.channel_crashed("user:1") == (
        b'["1","1","user:1","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]'
    )


def test_close_channel() -> None:
    proto = ConnectionProtocol()
    joined(proto, "conversation:1", "1")
    assert proto.close_channel("conversation:1") == b'["1","1","conversation:1","phx_close",{}]'
    assert proto.close_channel("conversation:1") == b""


def test_too_many_topics() -> None:
    proto = ConnectionProtocol(max_topics=2)
    joined(proto, "user:1", "1")
    proto.receive(frame("2", "2", "conversation:1", "phx_join", {}))  # joining counts
    assert proto.receive(frame("3", "3", "conversation:2", "phx_join", {})) == [
        SendFrame(
            b'["3","3","conversation:2","phx_reply",'
            b'{"status":"error","response":{"reason":"too_many_topics"}}]'
        )
    ]
    # Rejoining an existing topic is still allowed.
    events = proto.receive(frame("4", "4", "user:1", "phx_join", {}))
    assert isinstance(events[-1], JoinRequested)


def test_reserved_event_from_client() -> None:
    proto = ConnectionProtocol()
    joined(proto, "user:1", "1")
    [event] = proto.receive(frame("1", "2", "user:1", "phx_reply", {}))
    assert isinstance(event, SendFrame)
    assert b'"status":"error"' in event.data


def test_join_without_refs() -> None:
    proto = ConnectionProtocol()
    [event] = proto.receive(frame(None, None, "user:1", "phx_join", {}))
    assert isinstance(event, SendFrame)
    assert b'"reason":"invalid"' in event.data
    # V1-style join (join_ref null): the ref is the join_ref.
    assert proto.receive(frame(None, "3", "user:1", "phx_join", {})) == [
        JoinRequested("user:1", "3", "3", {})
    ]


def test_violation_closes_protocol() -> None:
    proto = ConnectionProtocol(max_size=50)
    assert proto.receive(b"x" * 51) == [Violation("too_large", proto_msg(b"x" * 51), 1009)]
    assert proto.closed
    assert proto.receive(frame(None, "1", "phoenix", "heartbeat", {})) == []


def proto_msg(data: bytes) -> str:
    return f"frame of {len(data)} bytes, limit 50"


def test_violation_codes() -> None:
    for data, code in [(b"nope", 1007), (b"[1,2,3,4,5]", 1007), (b'["\xff"]', 1007)]:
        [event] = ConnectionProtocol().receive(data)
        assert isinstance(event, Violation)
        assert event.code == code
    [event] = ConnectionProtocol().receive(b"\x00", binary=True)
    assert isinstance(event, Violation)
    assert (event.reason, event.code) == ("unsupported", 1003)
