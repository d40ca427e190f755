"""Python transliterations of phoenix.js's serializer and presence, used as test oracles.

Each function follows its JavaScript original line by line (``assets/js/phoenix/serializer.js``
and ``presence.js``, Phoenix 1.8), so a test can assert that what the server encodes is what
the official client decodes, and that our presence diffs do to a client state what
``Presence.syncDiff`` does. Kept deliberately literal rather than idiomatic.
"""

from __future__ import annotations

import copy
import json
from typing import Any

KINDS = {"push": 0, "reply": 1, "broadcast": 2}


def binary_encode(join_ref: str, ref: str, topic: str, event: str, payload: bytes) -> bytes:
    """``Serializer.binaryEncode``: a client push with an ArrayBuffer payload."""
    parts = [s.encode("utf-8") for s in (join_ref, ref, topic, event)]
    for part in parts:
        assert len(part) <= 255
    header = bytes([KINDS["push"], *(len(p) for p in parts)])
    return header + b"".join(parts) + payload


def decode(raw: bytes | str) -> dict[str, Any]:
    """``Serializer.decode``: text is ``JSON.parse`` of a 5-array; binary by its kind byte."""
    if isinstance(raw, str):
        join_ref, ref, topic, event, payload = json.loads(raw)
        return {
            "join_ref": join_ref,
            "ref": ref,
            "topic": topic,
            "event": event,
            "payload": payload,
        }
    kind = raw[0]
    if kind == KINDS["push"]:
        return _decode_push(raw)
    if kind == KINDS["reply"]:
        return _decode_reply(raw)
    if kind == KINDS["broadcast"]:
        return _decode_broadcast(raw)
    raise AssertionError(f"serializer.js has no binary kind {kind}")


def _decode_push(buf: bytes) -> dict[str, Any]:
    join_ref_size, topic_size, event_size = buf[1], buf[2], buf[3]
    offset = 1 + 4 - 1  # pushes have no ref
    join_ref = buf[offset : offset + join_ref_size].decode()
    offset += join_ref_size
    topic = buf[offset : offset + topic_size].decode()
    offset += topic_size
    event = buf[offset : offset + event_size].decode()
    offset += event_size
    data = buf[offset:]
    return {"join_ref": join_ref, "ref": None, "topic": topic, "event": event, "payload": data}


def _decode_reply(buf: bytes) -> dict[str, Any]:
    join_ref_size, ref_size, topic_size, event_size = buf[1], buf[2], buf[3], buf[4]
    offset = 1 + 4
    join_ref = buf[offset : offset + join_ref_size].decode()
    offset += join_ref_size
    ref = buf[offset : offset + ref_size].decode()
    offset += ref_size
    topic = buf[offset : offset + topic_size].decode()
    offset += topic_size
    event = buf[offset : offset + event_size].decode()
    offset += event_size
    data = buf[offset:]
    payload = {"status": event, "response": data}
    return {
        "join_ref": join_ref,
        "ref": ref,
        "topic": topic,
        "event": "phx_reply",
        "payload": payload,
    }


def _decode_broadcast(buf: bytes) -> dict[str, Any]:
    topic_size, event_size = buf[1], buf[2]
    offset = 1 + 2
    topic = buf[offset : offset + topic_size].decode()
    offset += topic_size
    event = buf[offset : offset + event_size].decode()
    offset += event_size
    data = buf[offset:]
    return {"join_ref": None, "ref": None, "topic": topic, "event": event, "payload": data}


def is_member(channel_topic: str, channel_join_ref: str, topic: str, join_ref: Any) -> bool:
    """``Channel.isMember``: a message with a set, different join_ref is dropped."""
    if channel_topic != topic:
        return False
    return not (join_ref and join_ref != channel_join_ref)


def sync_state(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``Presence.syncState`` (callbacks left out)."""
    state = copy.deepcopy(current)
    new = copy.deepcopy(new)
    joins: dict[str, Any] = {}
    leaves: dict[str, Any] = {}
    for key, presence in state.items():
        if key not in new:
            leaves[key] = presence
    for key, new_presence in new.items():
        current_presence = state.get(key)
        if current_presence:
            new_refs = [m["phx_ref"] for m in new_presence["metas"]]
            cur_refs = [m["phx_ref"] for m in current_presence["metas"]]
            joined = [m for m in new_presence["metas"] if m["phx_ref"] not in cur_refs]
            left = [m for m in current_presence["metas"] if m["phx_ref"] not in new_refs]
            if joined:
                joins[key] = new_presence
                joins[key]["metas"] = joined
            if left:
                leaves[key] = copy.deepcopy(current_presence)
                leaves[key]["metas"] = left
        else:
            joins[key] = new_presence
    return sync_diff(state, {"joins": joins, "leaves": leaves})


def sync_diff(state: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    """``Presence.syncDiff`` (callbacks left out). Mutates and returns ``state``, as JS does."""
    diff = copy.deepcopy(diff)
    joins, leaves = diff["joins"], diff["leaves"]
    for key, new_presence in joins.items():
        current_presence = state.get(key)
        state[key] = copy.deepcopy(new_presence)
        if current_presence:
            joined_refs = [m["phx_ref"] for m in state[key]["metas"]]
            cur_metas = [m for m in current_presence["metas"] if m["phx_ref"] not in joined_refs]
            state[key]["metas"][:0] = cur_metas
    for key, left_presence in leaves.items():
        current_presence = state.get(key)
        if not current_presence:
            continue
        refs_to_remove = [m["phx_ref"] for m in left_presence["metas"]]
        current_presence["metas"] = [
            p for p in current_presence["metas"] if p["phx_ref"] not in refs_to_remove
        ]
        if len(current_presence["metas"]) == 0:
            del state[key]
    return state
