"""Scheduled and disappearing messages over real sockets, on both stores (``node``).

Every event of whispr/gateway/channels/scheduled.py: its reply, the message a schedule
becomes (an ordinary ``new_message`` that records it was scheduled), the refusals, the
author's right to post asked again at sending, and a disappearing message gone from the
store, history, catch-up and the conversation actor's cache, with ``message_expired`` on
every member's devices. A node restarted after schedules fell due sends them at once, in
``send_at`` order, marked late.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from actors.calls import Call
from actors.conversation import ConversationActor
from actors.model import Message
from supervisors import stop_tree
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.client import PhoenixClient, ReplyError


async def _group(client: PhoenixClient, owner: str, members: list[str]) -> str:
    await client.join(f"user:{owner}")
    created = await client.push(
        f"user:{owner}", "create_conversation", {"kind": "group", "title": "g", "members": members}
    )
    return str(created["conversation"]["id"])


async def _refused(client: PhoenixClient, topic: str, event: str, payload: dict[str, Any]) -> Any:
    with pytest.raises(ReplyError) as caught:
        await client.push(topic, event, payload)
    return caught.value.response


async def _next_message(client: PhoenixClient, topic: str, kind: str = "text") -> dict[str, Any]:
    while True:
        event = await client.next_event(topic, "new_message")
        message: dict[str, Any] = event.payload["message"]
        if message["kind"] == kind:
            return message


def _cached(actor: ConversationActor) -> dict[int, Message]:
    return dict(actor._recent)


async def _actor_cache(node: RunningNode, cid: str) -> dict[int, Message]:
    ref = node.node.registry.whereis(("conversation", cid))
    assert ref is not None
    cached: dict[int, Message] = await ref.ask_soon(Call(_cached, (), {}, None))
    return cached


async def test_a_schedule_is_kept_listed_changed_and_sent_as_an_ordinary_message(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    async with node.client(ada) as a, node.client(bob) as b:
        cid = await _group(a, ada, [bob])
        topic = f"conversation:{cid}"
        await a.join(topic, {})
        await b.join(topic, {})
        send_at = time.time() + 1.5
        reply = await a.push(
            topic,
            "schedule_message",
            {"client_id": "s1", "content": "later", "send_at": send_at + 60},
        )
        schedule = reply["schedule"]
        assert (schedule["sender_id"], schedule["draft"]["content"]) == (ada, "later")
        # Idempotent by client id: a retry answers the same schedule.
        again = await a.push(
            topic, "schedule_message", {"client_id": "s1", "content": "x", "send_at": send_at}
        )
        assert again["schedule"]["id"] == schedule["id"]
        other = await a.push(
            topic, "schedule_message", {"client_id": "s2", "content": "gone", "send_at": send_at}
        )
        listed = await a.push(topic, "list_scheduled", {})
        assert [s["id"] for s in listed["scheduled"]] == [other["schedule"]["id"], schedule["id"]]
        assert (await b.push(topic, "list_scheduled", {}))["scheduled"] == []
        # Only its author sees or touches it.
        refused = await _refused(b, topic, "cancel_scheduled", {"schedule_id": schedule["id"]})
        assert (refused["reason"], refused["field"]) == ("not_found", "schedule_id")
        changed = await a.push(
            topic,
            "update_scheduled",
            {"schedule_id": schedule["id"], "content": "sooner", "send_at": send_at},
        )
        assert (changed["schedule"]["draft"]["content"], changed["schedule"]["send_at"]) == (
            "sooner",
            send_at,
        )
        await a.push(topic, "cancel_scheduled", {"schedule_id": other["schedule"]["id"]})

        message = await _next_message(b, topic)
        sent_at = time.time()
        assert (message["sender_id"], message["content"]) == (ada, "sooner")
        mark = message["metadata"]["scheduled"]
        assert (mark["id"], mark["send_at"]) == (schedule["id"], send_at)
        assert sent_at >= send_at
        assert (await a.push(topic, "list_scheduled", {}))["scheduled"] == []
        history = await b.push(topic, "history", {})
        assert [m["content"] for m in history["messages"] if m["kind"] == "text"] == ["sooner"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"client_id": "c", "content": "x"}, "send_at"),
        ({"client_id": "c", "content": "x", "send_at": 2**70}, "send_at"),
        ({"client_id": "c", "content": "x", "send_at": -1}, "send_at"),
        ({"client_id": "c", "content": "x", "send_at": 1e300}, "send_at"),
        ({"client_id": "", "content": "x", "send_at": 1}, "client_id"),
        ({"client_id": "c", "content": "a\u0000b", "send_at": 1}, "content"),
        ({"client_id": "c", "content": "x", "send_at": 1, "ttl": 0}, "ttl"),
        ({"client_id": "c", "content": "x", "send_at": 1, "ttl": 2**64}, "ttl"),
        (
            {"client_id": "c", "content": "x", "send_at": 1, "metadata": {"scheduled": 1}},
            "metadata",
        ),
        ({"client_id": "c", "content": "x", "send_at": 1, "kind": "system"}, "kind"),
        ({"client_id": "c", "content": "x", "send_at": 1, "extra": 1}, "extra"),
        # End to end: envelopes are made for the devices of now, not of the sending time.
        ({"client_id": "c", "send_at": 1, "metadata": {"e2e": True}}, "envelopes"),
        (
            {"client_id": "c", "content": "x", "send_at": 1, "blind_tokens": ["AAAAAAAAAAA="]},
            "envelopes",
        ),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field(
    node: RunningNode, payload: dict[str, Any], field: str
) -> None:
    ada = unique("ada")
    async with node.client(ada) as a:
        cid = await _group(a, ada, [])
        topic = f"conversation:{cid}"
        await a.join(topic, {})
        refused = await _refused(a, topic, "schedule_message", payload)
        assert (refused["reason"], refused.get("field")) == ("invalid", field)
        for bad_id in ("", "a\x00b", "x" * 10_000):
            refused = await _refused(a, topic, "cancel_scheduled", {"schedule_id": bad_id})
            assert refused["reason"] in ("invalid", "not_found")
            assert refused["field"] == "schedule_id"
        assert (await a.push(topic, "list_scheduled", {}))["scheduled"] == []


async def test_a_member_removed_before_sending_time_does_not_post(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    async with node.client(ada) as a, node.client(bob) as b:
        cid = await _group(a, ada, [bob])
        topic = f"conversation:{cid}"
        await a.join(topic, {})
        await b.join(topic, {})
        await b.join(f"user:{bob}")
        send_at = time.time() + 1.0
        reply = await b.push(
            topic, "schedule_message", {"client_id": "s", "content": "hi", "send_at": send_at}
        )
        await a.push(topic, "remove_member", {"user_id": bob})
        failed = await b.next_event(f"user:{bob}", "schedule_failed", timeout=15)
        assert failed.payload["schedule_id"] == reply["schedule"]["id"]
        assert failed.payload["reason"] == "not_member"
        history = await a.push(topic, "history", {})
        assert [m for m in history["messages"] if m["sender_id"] == bob] == []
        assert (await a.push(topic, "list_scheduled", {}))["scheduled"] == []


async def test_a_disappearing_message_is_gone_everywhere(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    async with (
        node.client(ada) as a,
        node.client(bob, "phone") as b_phone,
        node.client(bob, "laptop") as b_laptop,
    ):
        cid = await _group(a, ada, [bob])
        topic = f"conversation:{cid}"
        for client in (a, b_phone):
            await client.join(topic, {})
        await b_laptop.join(f"user:{bob}")  # a device that follows only its user topic

        refused = await _refused(b_phone, topic, "set_disappearing", {"seconds": 30})
        assert (refused["reason"], refused["right"]) == ("forbidden", "set_disappearing")
        reply = await a.push(topic, "set_disappearing", {"seconds": 2})
        assert reply["conversation"]["settings"]["disappearing_s"] == 2
        announced = await _next_message(b_phone, topic, "system")
        assert announced["metadata"] == {"event": "disappearing_changed", "by": ada, "seconds": 2}
        refused = await _refused(a, topic, "set_disappearing", {"seconds": 2**63})
        assert (refused["reason"], refused["field"]) == ("invalid", "seconds")

        kept = await a.push(
            topic, "send_message", {"client_id": "k", "content": "stays", "ttl": 60}
        )
        short = await b_phone.push(
            topic, "send_message", {"client_id": "t", "content": "bye", "ttl": 1}
        )
        await b_phone.push(topic, "react", {"seq": short["seq"], "emoji": "👍"})
        sent = [await _next_message(a, topic) for _ in range(2)]
        assert sent[1]["metadata"]["expires_at"] == pytest.approx(sent[1]["created_at"] + 1)
        assert sent[0]["metadata"]["expires_at"] == pytest.approx(sent[0]["created_at"] + 2)
        assert short["seq"] in await _actor_cache(node, cid)

        for client, where in ((a, topic), (b_phone, topic), (b_laptop, f"user:{bob}")):
            expired = await client.next_event(where, "message_expired", timeout=15)
            assert expired.payload == {"conversation_id": cid, "seq": short["seq"]}
        # The message with the conversation's 2 s goes too, the one after it later.
        expired = await a.next_event(topic, "message_expired", timeout=15)
        assert expired.payload["seq"] == kept["seq"]

        history = await a.push(topic, "history", {})
        seqs = [m["seq"] for m in history["messages"]]
        assert short["seq"] not in seqs
        assert kept["seq"] not in seqs
        async with node.client(bob, "tablet") as tablet:  # a catch-up from the start
            await tablet.join(topic, {"last_seq": 0})
            replayed = [
                (await tablet.next_event(topic, "new_message")).payload["message"]["seq"]
                for _ in range(len(seqs))
            ]
            assert replayed == seqs
        store = node.node.store.get().store
        assert await store.get_message(cid, short["seq"]) is None
        stub = await store.find_by_client_id(cid, bob, "t")
        assert stub is not None
        assert (stub.content, stub.reactions, stub.metadata) == ("", {}, {})
        assert short["seq"] not in await _actor_cache(node, cid)
        refused = await _refused(a, topic, "react", {"seq": short["seq"], "emoji": "👍"})
        assert refused["reason"] in ("not_found", "invalid")


async def test_overdue_schedules_and_expiries_go_at_once_after_a_restart(
    tmp_path: Path,
) -> None:
    env = {"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")}
    ada = unique("ada")
    running = await start_node(env)
    try:
        async with running.client(ada) as a:
            cid = await _group(a, ada, [])
            topic = f"conversation:{cid}"
            await a.join(topic, {})
            due = time.time() + 1.0
            # A message due to disappear while the node is down: it goes when it comes back.
            short = await a.push(
                topic, "send_message", {"client_id": "t", "content": "bye", "ttl": 1}
            )
            for n, offset in enumerate((0.3, 0.1, 0.2)):
                await a.push(
                    topic,
                    "schedule_message",
                    {"client_id": f"s{n}", "content": f"at {offset}", "send_at": due + offset},
                )
    finally:
        await stop_tree(running.root, deadline=10)
    await asyncio.sleep(max(0.0, due + 2.0 - time.time()))  # all of them overdue by > 1 s
    running = await start_node(env)
    try:
        async with running.client(ada) as a:
            await a.join(topic, {})
            found: list[dict[str, Any]] = []
            for _ in range(50):
                history = await a.push(topic, "history", {})
                found = [m for m in history["messages"] if m["kind"] == "text"]
                if len(found) == 3 and all(m["content"] != "bye" for m in found):
                    break
                await asyncio.sleep(0.1)
            assert [m["content"] for m in found] == ["at 0.1", "at 0.2", "at 0.3"]
            assert short["seq"] not in [m["seq"] for m in history["messages"]]
            assert all(m["metadata"]["scheduled"]["late"] for m in found)
    finally:
        await stop_tree(running.root, deadline=10)
