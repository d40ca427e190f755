"""The channel state machine, driven with frames exactly as phoenix.js sends them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.protocol import phoenix_js
from whispr.protocol import frames
from whispr.protocol.channels import (
    ConnectionProtocol,
    Event,
    JoinRequested,
    LeaveRequested,
    ProtocolViolation,
    PushReceived,
    SocketPushReceived,
    error_response,
)
from whispr.protocol.frames import CloseCode, Reason

UNMATCHED = b'{"status":"error","response":{"reason":"unmatched topic"}}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Refusal:
    """Stands for actors.errors.WhisprError: anything with to_payload()."""

    def to_payload(self) -> dict[str, Any]:
        return {"reason": "not_member", "message": "not a member", "conversation": "c1"}


def msg(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> bytes:
    return msgspec.json.encode([join_ref, ref, topic, event, payload])


def feed(proto: ConnectionProtocol, data: bytes | str, *, binary: bool = False) -> Any:
    """Receive one message; return (data_to_send, events_received)."""
    proto.receive_data(data, binary=binary)
    return proto.data_to_send(), proto.events_received()


def join(proto: ConnectionProtocol, topic: str = "conversation:1", ref: str = "1") -> None:
    out, events = feed(proto, msg(ref, ref, topic, "phx_join", {}))
    assert (out, events) == ([], [JoinRequested(topic, ref, ref, {})])
    assert proto.accept_join(topic, {}, join_ref=ref)


# -- heartbeat and liveness --------------------------------------------------------------------


def test_heartbeat_replied() -> None:
    proto = ConnectionProtocol()
    assert feed(proto, msg(None, "5", "phoenix", "heartbeat", {})) == (
        [b'[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]'],
        [],
    )


def test_declared_socket_events_reach_the_application_and_others_stay_unmatched() -> None:
    proto = ConnectionProtocol(socket_events=("refresh_token",))
    out, events = feed(proto, msg(None, "7", "phoenix", "refresh_token", {"token": "t"}))
    assert (out, events) == ([], [SocketPushReceived("refresh_token", "7", {"token": "t"})])
    assert proto.socket_reply("7", "ok", {"expires_at": 1.5}) == (
        b'[null,"7","phoenix","phx_reply",{"status":"ok","response":{"expires_at":1.5}}]'
    )
    assert proto.socket_reply("8", "error", Refusal()) == (
        b'[null,"8","phoenix","phx_reply",{"status":"error","response":'
        b'{"reason":"not_member","message":"not a member","conversation":"c1"}}]'
    )
    assert proto.socket_reply(None, "ok", {}) is None
    # Not declared: as before, unmatched.
    out, events = feed(ConnectionProtocol(), msg(None, "7", "phoenix", "refresh_token", {}))
    assert events == []
    assert UNMATCHED in out[0]
    proto.connection_closed()
    assert proto.socket_reply("9", "ok", {}) is None


def test_tick_times_out_after_silence() -> None:
    clock = Clock()
    proto = ConnectionProtocol(clock=clock, heartbeat_timeout=90)
    assert not proto.tick(1090.0)
    assert proto.tick(1090.5)
    clock.now = 1050.0
    feed(proto, msg(None, "5", "phoenix", "heartbeat", {}))
    assert proto.last_seen == 1050.0
    assert not proto.tick(1140.0)
    assert proto.tick(1140.5)


def test_any_message_is_a_sign_of_life() -> None:
    clock = Clock()
    proto = ConnectionProtocol(clock=clock, heartbeat_timeout=90)
    clock.now = 1080.0
    feed(proto, msg("1", "2", "user:1", "typing", {}))  # unmatched, but the client is alive
    assert not proto.tick(1169.0)


def test_other_events_on_phoenix_topic() -> None:
    proto = ConnectionProtocol()
    out, events = feed(proto, msg(None, "1", "phoenix", "x", {}))
    assert out == [b'[null,"1","phoenix","phx_reply",' + UNMATCHED + b"]"]
    out, events = feed(proto, msg("2", "2", "phoenix", "phx_join", {}))
    assert out == [b'[null,"2","phoenix","phx_reply",' + UNMATCHED + b"]"]
    assert events == []


# -- join --------------------------------------------------------------------------------------


def test_join_accept_push_reply() -> None:
    proto = ConnectionProtocol()
    out, events = feed(proto, msg("3", "3", "conversation:1", "phx_join", {"last_seq": 4}))
    assert (out, events) == ([], [JoinRequested("conversation:1", "3", "3", {"last_seq": 4})])
    assert proto.topic_state("conversation:1") == "joining"
    assert not proto.is_joined("conversation:1")

    assert proto.accept_join("conversation:1", {"seq": 9}, join_ref="3") == (
        b'["3","3","conversation:1","phx_reply",{"status":"ok","response":{"seq":9}}]'
    )
    assert proto.is_joined("conversation:1")
    assert proto.joined_topics() == {"conversation:1": "3"}
    assert proto.accept_join("conversation:1", {}) is None  # nothing pending any more

    out, events = feed(proto, msg("3", "4", "conversation:1", "new_msg", {"body": "hi"}))
    assert (out, events) == (
        [],
        [PushReceived("conversation:1", "new_msg", "4", "3", {"body": "hi"})],
    )
    assert proto.reply("conversation:1", "4", "ok", {"id": 9}, join_ref="3") == (
        b'["3","4","conversation:1","phx_reply",{"status":"ok","response":{"id":9}}]'
    )
    assert proto.push("conversation:1", "typing", {"user": "u"}) == (
        b'["3",null,"conversation:1","typing",{"user":"u"}]'
    )


def test_accept_join_default_response_and_struct() -> None:
    class Joined(msgspec.Struct):
        seq: int

    proto = ConnectionProtocol()
    feed(proto, msg("1", "1", "a:1", "phx_join", {}))
    feed(proto, msg("2", "2", "b:1", "phx_join", {}))
    assert proto.accept_join("a:1") == b'["1","1","a:1","phx_reply",{"status":"ok","response":{}}]'
    assert proto.accept_join("b:1", Joined(3)) == (
        b'["2","2","b:1","phx_reply",{"status":"ok","response":{"seq":3}}]'
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("forbidden", b'{"reason":"forbidden"}'),
        (Reason.UNMATCHED_TOPIC, b'{"reason":"unmatched topic"}'),
        (
            error_response("not_member", "no", conversation="c1"),
            b'{"reason":"not_member","message":"no","conversation":"c1"}',
        ),
        (Refusal(), b'{"reason":"not_member","message":"not a member","conversation":"c1"}'),
    ],
)
def test_reject_join(response: Any, expected: bytes) -> None:
    proto = ConnectionProtocol()
    feed(proto, msg("1", "1", "user:2", "phx_join", {}))
    assert proto.reject_join("user:2", response, join_ref="1") == (
        b'["1","1","user:2","phx_reply",{"status":"error","response":' + expected + b"}]"
    )
    assert proto.topic_state("user:2") is None
    assert proto.reject_join("user:2", "forbidden") is None


def test_join_with_v1_style_null_join_ref_uses_its_ref() -> None:
    proto = ConnectionProtocol()
    assert feed(proto, msg(None, "3", "user:1", "phx_join", {})) == (
        [],
        [JoinRequested("user:1", "3", "3", {})],
    )


def test_join_without_any_ref_is_invalid() -> None:
    proto = ConnectionProtocol()
    out, events = feed(proto, msg(None, None, "user:1", "phx_join", {}))
    assert events == []
    assert b'"reason":"invalid"' in out[0]
    assert proto.topic_state("user:1") is None


def test_topic_prefixes_route_joins() -> None:
    proto = ConnectionProtocol(topic_prefixes=("user:", "conversation:"))
    out, events = feed(proto, msg("1", "1", "admin:1", "phx_join", {}))
    assert (out, events) == ([b'[null,"1","admin:1","phx_reply",' + UNMATCHED + b"]"], [])
    out, events = feed(proto, msg("2", "2", "user:1", "phx_join", {}))
    assert (out, events) == ([], [JoinRequested("user:1", "2", "2", {})])


def test_too_many_topics() -> None:
    proto = ConnectionProtocol(max_topics=2)
    join(proto, "user:1", "1")
    feed(proto, msg("2", "2", "conversation:1", "phx_join", {}))  # joining counts
    out, events = feed(proto, msg("3", "3", "conversation:2", "phx_join", {}))
    assert events == []
    assert out == [
        b'["3","3","conversation:2","phx_reply",{"status":"error","response":'
        b'{"reason":"too many channels joined","message":"at most 2 topics per connection"}}]'
    ]
    # Rejoining a topic already held does not count twice.
    out, events = feed(proto, msg("4", "4", "user:1", "phx_join", {}))
    assert isinstance(events[-1], JoinRequested)
    # A rejected join frees its slot.
    assert proto.reject_join("conversation:1", "forbidden")
    _, events = feed(proto, msg("5", "5", "conversation:2", "phx_join", {}))
    assert events == [JoinRequested("conversation:2", "5", "5", {})]


def test_duplicate_join_closes_old_instance_then_joins() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    out, events = feed(proto, msg("7", "7", "user:1", "phx_join", {}))
    assert out == [b'["1","1","user:1","phx_close",{}]']
    assert events == [
        LeaveRequested("user:1", "1", None, "rejoin"),
        JoinRequested("user:1", "7", "7", {}),
    ]
    # phoenix.js, now on join_ref "7", drops the phx_close addressed to "1".
    close = phoenix_js.decode(out[0].decode())
    assert not phoenix_js.is_member("user:1", "7", close["topic"], close["join_ref"])
    # A late answer for the superseded instance is dropped; the new one goes through.
    assert proto.accept_join("user:1", {}, join_ref="1") is None
    assert proto.accept_join("user:1", {}, join_ref="7")
    assert proto.reply("user:1", "8", "ok", {}, join_ref="1") is None
    assert proto.reply("user:1", "8", "ok", {}, join_ref="7")


def test_duplicate_join_while_joining_sends_nothing_for_the_old_one() -> None:
    proto = ConnectionProtocol()
    feed(proto, msg("1", "1", "user:1", "phx_join", {}))
    out, events = feed(proto, msg("2", "2", "user:1", "phx_join", {}))
    assert out == []
    assert events == [
        LeaveRequested("user:1", "1", None, "rejoin"),
        JoinRequested("user:1", "2", "2", {}),
    ]
    assert proto.accept_join("user:1", join_ref="1") is None


def test_binary_join_is_refused_in_band() -> None:
    proto = ConnectionProtocol()
    out, events = feed(
        proto, phoenix_js.binary_encode("1", "1", "t", "phx_join", b"x"), binary=True
    )
    assert events == []
    assert out == [
        b'["1","1","t","phx_reply",{"status":"error","response":'
        b'{"reason":"invalid","message":"phx_join payload must be JSON"}}]'
    ]


# -- pushes ------------------------------------------------------------------------------------


def test_push_to_unjoined_or_joining_topic_is_unmatched() -> None:
    proto = ConnectionProtocol()
    expected = [b'[null,"2","user:1","phx_reply",' + UNMATCHED + b"]"]
    assert feed(proto, msg("1", "2", "user:1", "ev", {})) == (expected, [])
    feed(proto, msg("1", "1", "user:1", "phx_join", {}))
    assert feed(proto, msg("1", "2", "user:1", "ev", {})) == (expected, [])


def test_unmatched_reply_reaches_the_pushing_channel() -> None:
    proto = ConnectionProtocol()
    [data], _ = feed(proto, msg("1", "2", "user:1", "ev", {}))
    reply = phoenix_js.decode(data.decode())
    assert phoenix_js.is_member("user:1", "1", reply["topic"], reply["join_ref"])
    assert reply["ref"] == "2"


def test_push_with_stale_join_ref_is_ignored() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "5")
    assert feed(proto, msg("4", "6", "user:1", "ev", {})) == ([], [])


def test_push_without_join_ref_is_accepted() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "5")
    assert feed(proto, msg(None, "6", "user:1", "ev", {})) == (
        [],
        [PushReceived("user:1", "ev", "6", "5", {})],
    )


def test_client_may_not_push_server_events() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    for event in ("phx_reply", "phx_error", "phx_close"):
        [data], events = feed(proto, msg("1", "2", "user:1", event, {}))
        assert events == []
        assert data.startswith(b'["1","2","user:1","phx_reply",{"status":"error"')
        assert b'"reason":"invalid"' in data


def test_invalid_payload_gets_an_error_reply_and_keeps_the_connection() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    [data], events = feed(proto, msg("1", "2", "user:1", "new_msg", "just a string"))
    assert events == []
    reply = msgspec.json.decode(data)
    assert reply[:4] == ["1", "2", "user:1", "phx_reply"]
    assert reply[4]["status"] == "error"
    assert reply[4]["response"]["reason"] == "invalid"
    assert "payload" in reply[4]["response"]["message"]
    assert not proto.closed
    assert proto.is_joined("user:1")


def test_binary_push_and_binary_reply() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    data = phoenix_js.binary_encode("1", "2", "user:1", "upload", b"\x00\x01")
    assert feed(proto, data, binary=True) == (
        [],
        [PushReceived("user:1", "upload", "2", "1", b"\x00\x01")],
    )
    out = proto.reply("user:1", "2", "ok", b"\xff")
    assert out is not None
    assert frames.is_binary(out)
    assert phoenix_js.decode(out)["payload"] == {"status": "ok", "response": b"\xff"}


def test_binary_heartbeat_is_answered() -> None:
    proto = ConnectionProtocol()
    out, _ = feed(
        proto, phoenix_js.binary_encode("", "9", "phoenix", "heartbeat", b""), binary=True
    )
    assert out == [frames.heartbeat_reply("9")]


def test_binary_refused_when_not_accepted() -> None:
    proto = ConnectionProtocol(accept_binary=False)
    data = phoenix_js.binary_encode("1", "2", "user:1", "upload", b"")
    out, events = feed(proto, data, binary=True)
    assert out == []
    assert events == [
        ProtocolViolation(Reason.UNSUPPORTED, "binary messages are not accepted", CloseCode(1003))
    ]


# -- leave -------------------------------------------------------------------------------------


def test_leave_replies_ok_then_closes() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    out, events = feed(proto, msg("1", "2", "user:1", "phx_leave", {}))
    assert out == [
        b'["1","2","user:1","phx_reply",{"status":"ok","response":{}}]',
        b'["1","1","user:1","phx_close",{}]',
    ]
    assert events == [LeaveRequested("user:1", "1", "2", "leave")]
    assert not proto.is_joined("user:1")
    assert proto.reply("user:1", "3", "ok", {}) is None
    assert proto.push("user:1", "e", {}) is None


def test_leave_of_unjoined_topic_is_ok() -> None:
    proto = ConnectionProtocol()
    assert feed(proto, msg("1", "2", "user:1", "phx_leave", {})) == (
        [b'["1","2","user:1","phx_reply",{"status":"ok","response":{}}]'],
        [],
    )


def test_leave_with_stale_join_ref_is_ignored() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "5")
    assert feed(proto, msg("4", "6", "user:1", "phx_leave", {})) == ([], [])
    assert proto.is_joined("user:1")


def test_leave_while_joining_ends_the_pending_join() -> None:
    proto = ConnectionProtocol()
    feed(proto, msg("1", "1", "user:1", "phx_join", {}))
    out, events = feed(proto, msg("1", "2", "user:1", "phx_leave", {}))
    assert len(out) == 2
    assert events == [LeaveRequested("user:1", "1", "2", "leave")]
    assert proto.accept_join("user:1", {}) is None


# -- server-side endings -----------------------------------------------------------------------


def test_channel_crashed_sends_phx_error_and_allows_rejoin() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    assert proto.channel_crashed("user:1", join_ref="1") == (
        b'["1","1","user:1","phx_error",{"reason":"channel_crash"}]'
    )
    assert proto.topic_state("user:1") is None
    assert proto.channel_crashed("user:1") is None
    join(proto, "user:1", "9")  # phoenix.js rejoins with a new join_ref


def test_channel_crashed_while_joining() -> None:
    proto = ConnectionProtocol()
    feed(proto, msg("1", "1", "user:1", "phx_join", {}))
    assert proto.channel_crashed("user:1", join_ref="2") is None  # not that instance
    assert proto.channel_crashed("user:1") == (
        b'["1","1","user:1","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]'
    )


def test_close_channel() -> None:
    proto = ConnectionProtocol()
    feed(proto, msg("1", "1", "conversation:1", "phx_join", {}))
    assert proto.close_channel("conversation:1") is None  # joining: reject_join instead
    proto.accept_join("conversation:1")
    assert proto.close_channel("conversation:1") == b'["1","1","conversation:1","phx_close",{}]'
    assert proto.close_channel("conversation:1") is None


def test_broadcast_only_to_joined_topics() -> None:
    proto = ConnectionProtocol()
    encoded = frames.encode_broadcast("conversation:1", "new_msg", {"seq": 1})
    assert proto.broadcast("conversation:1", encoded) is None
    feed(proto, msg("1", "1", "conversation:1", "phx_join", {}))
    assert proto.broadcast("conversation:1", encoded) is None  # still joining
    proto.accept_join("conversation:1")
    assert proto.broadcast("conversation:1", encoded) is encoded  # the same bytes, not a copy
    # phoenix.js delivers it to the channel whatever its join_ref.
    message = phoenix_js.decode(encoded.decode())
    assert phoenix_js.is_member("conversation:1", "1", message["topic"], message["join_ref"])


def test_connection_closed_ends_every_instance() -> None:
    proto = ConnectionProtocol()
    join(proto, "user:1", "1")
    feed(proto, msg("2", "2", "conversation:1", "phx_join", {}))
    assert proto.connection_closed() == [
        LeaveRequested("user:1", "1", None, "disconnect"),
        LeaveRequested("conversation:1", "2", None, "disconnect"),
    ]
    assert proto.closed
    assert proto.joined_topics() == {}
    assert feed(proto, msg(None, "3", "phoenix", "heartbeat", {})) == ([], [])


# -- violations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "binary", "reason", "code"),
    [
        (b"x" * 51, False, Reason.TOO_LARGE, 1009),
        (b"nope", False, Reason.INVALID_JSON, 1007),
        (b"[1,2,3,4,5]", False, Reason.INVALID, 1007),
        (b'["1","2","t\xff","e",{}]', False, Reason.INVALID_UTF8, 1007),
        (b'["1",null,"t","e",[]]', False, Reason.INVALID, 1007),  # no ref: cannot answer
        (b"\x02\x01\x01te", True, Reason.UNSUPPORTED, 1003),
        (b"\x00\x01", True, Reason.INVALID, 1007),
        ('["1","2","t","e",{}]', True, Reason.UNSUPPORTED, 1003),  # text in a binary frame
    ],
)
def test_violations_close_the_protocol(
    data: bytes | str, binary: bool, reason: Reason, code: int
) -> None:
    proto = ConnectionProtocol(max_size=50)
    join(proto, "user:1", "1")
    out, events = feed(proto, data, binary=binary)
    assert out == []
    [event] = events
    assert isinstance(event, ProtocolViolation)
    assert (event.reason, event.code) == (reason, code)
    assert len(event.message.encode()) <= 123
    assert proto.closed
    # Closed: input is ignored and every answer is None.
    assert feed(proto, msg(None, "1", "phoenix", "heartbeat", {})) == ([], [])
    assert proto.push("user:1", "e", {}) is None
    assert proto.reply("user:1", "1", "ok", {}) is None
    assert proto.channel_crashed("user:1") is None
    assert not proto.is_joined("user:1")


def test_events_and_data_are_handed_over_once() -> None:
    proto = ConnectionProtocol()
    proto.receive_data(msg(None, "1", "phoenix", "heartbeat", {}))
    proto.receive_data(msg("2", "2", "user:1", "phx_join", {}))
    proto.receive_data(msg(None, "3", "phoenix", "heartbeat", {}))
    assert [frames.decode(d).ref for d in proto.data_to_send()] == ["1", "3"]
    events: list[Event] = proto.events_received()
    assert events == [JoinRequested("user:1", "2", "2", {})]
    assert (proto.data_to_send(), proto.events_received()) == ([], [])
