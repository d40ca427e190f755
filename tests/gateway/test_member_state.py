"""A member's own state over real sockets, on both stores: settings synced to the user's
devices (across two nodes too), receipts, pins and settings on rejoin, threads paged, mentions
counted and cleared by reading."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.member_settings import MUTED_FOREVER
from actors.member_state import RECEIPTS_DELIVERED_MAX_MEMBERS
from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.client import ReplyError


async def _group(node: RunningNode, owner: str, *members: str) -> str:
    conversation = await node.node.messaging.get().create_group(owner, "t", list(members))
    return conversation.id


async def _send(client: Any, topic: str, client_id: str, content: str, **extra: Any) -> int:
    reply = await client.push(
        topic, "send_message", {"client_id": client_id, "content": content, **extra}
    )
    seq: int = reply["seq"]
    return seq


async def test_settings_are_answered_and_synced_to_the_users_other_devices(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic, own = f"conversation:{cid}", f"user:{ada}"
    async with (
        node.client(ada, "laptop") as laptop,
        node.client(ada, "phone") as phone,
        node.client(bob, "phone") as bobs,
    ):
        await phone.join(own)
        await bobs.join(f"user:{bob}")
        await laptop.join(topic)
        change = {"muted_until": "forever", "notifications": "mentions", "pin_order": 2}
        reply = await laptop.push(topic, "update_member_settings", change)
        expected = {
            "conversation_id": cid,
            "user_id": ada,
            "muted_until": "forever",
            "notifications": "mentions",
            "archived": False,
            "pin_order": 2,
        }
        assert reply == {"settings": expected}
        event = await phone.next_event(own, "member_settings_updated")
        assert event.payload == {"settings": expected}

        # Only the fields given change; null unmutes and unpins.
        reply = await laptop.push(
            topic, "update_member_settings", {"archived": True, "muted_until": None}
        )
        expected |= {"archived": True, "muted_until": None}
        assert reply == {"settings": expected}
        assert (await phone.next_event(own, "member_settings_updated")).payload == reply
        reply = await laptop.push(topic, "update_member_settings", {"muted_until": 1e9})
        assert reply["settings"]["muted_until"] == 1e9

        for bad, field in (
            ({"notifications": "loud"}, None),
            ({"pin_order": -1}, "pin_order"),
            ({"muted_until": MUTED_FOREVER + 1}, "muted_until"),
            ({"color": "red"}, None),
            ({}, None),
        ):
            with pytest.raises(ReplyError) as refused:
                await laptop.push(topic, "update_member_settings", bad)
            assert refused.value.reason == "invalid"
            if field is not None:
                assert refused.value.response["field"] == field

        # Stored: a fresh read gives the last settings; the other member heard nothing.
        state = await laptop.push(topic, "get_member_state", {})
        assert state["settings"] == expected | {"muted_until": 1e9}
        await asyncio.sleep(0.2)
        heard = [e.event for e in bobs.drain_events(f"user:{bob}")]
        assert "member_settings_updated" not in heard


@pytest.mark.services
async def test_settings_reach_a_device_on_another_node(postgres_url: str, redis_url: str) -> None:
    async with services.private_schema(postgres_url) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("t"),
        }
        a = await start_node({**env, "WHISPR_NODE_NAME": unique("a")})
        b = await start_node({**env, "WHISPR_NODE_NAME": unique("b")})
        try:
            ada, bob = unique("ada"), unique("bob")
            cid = await _group(a, ada, bob)
            topic, own = f"conversation:{cid}", f"user:{ada}"
            async with a.client(ada, "laptop") as laptop, b.client(ada, "phone") as phone:
                await phone.join(own)
                await laptop.join(topic)
                await asyncio.sleep(0.2)  # the phone's subscription is known to Redis
                reply = await laptop.push(topic, "update_member_settings", {"archived": True})
                event = await phone.next_event(own, "member_settings_updated")
                assert event.payload == reply
                assert reply["settings"]["archived"] is True
        finally:
            await stop_tree(a.root, deadline=10)
            await stop_tree(b.root, deadline=10)


async def test_a_rejoin_gets_receipts_pins_and_own_settings(node: RunningNode) -> None:
    ada, bob, cy, zed = unique("ada"), unique("bob"), unique("cy"), unique("zed")
    cid = await _group(node, ada, bob, cy)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob, "phone") as b, node.client(zed) as z:
        await a.join(topic)
        seqs = [await _send(a, topic, f"m{n}", f"message {n}") for n in range(3)]
        await a.push(topic, "pin", {"seq": seqs[0]})
        await b.join(topic)
        await b.push(topic, "mark_read", {"seq": seqs[1]})
        await b.push(topic, "mark_delivered", {"seq": seqs[2]})
        await b.push(topic, "update_member_settings", {"muted_until": "forever"})
        await b.leave(topic)

        joined = await b.join(topic, {"last_seq": seqs[2], "state": True})
        state = joined["state"]
        receipts = {r["user_id"]: r for r in state["receipts"]}
        assert receipts[bob] == {"user_id": bob, "read_seq": seqs[1], "delivered_seq": seqs[2]}
        assert receipts[cy] == {"user_id": cy, "read_seq": 0, "delivered_seq": 0}
        assert set(receipts) == {ada, bob, cy}
        assert [p["seq"] for p in state["pins"]] == [seqs[0]]
        assert state["pins"][0]["pinned"] is True
        assert state["settings"]["muted_until"] == "forever"
        assert state["settings"]["user_id"] == bob

        # The same, one request each; without "state" the join reply is as before.
        assert (await b.push(topic, "get_receipts", {}))["receipts"] == state["receipts"]
        assert (await b.push(topic, "list_pins", {}))["pins"] == state["pins"]
        one = await b.push(topic, "get_receipts", {"user_id": bob})
        assert one["receipts"] == [receipts[bob]]
        with pytest.raises(ReplyError) as unknown:
            await b.push(topic, "get_receipts", {"user_id": zed})
        assert unknown.value.reason == "not_found"
        assert "state" not in await a.join(f"conversation:{cid}", {"last_seq": seqs[2]})

        # A non-member learns nothing.
        with pytest.raises(ReplyError) as outsider:
            await z.join(topic, {"state": True})
        assert outsider.value.reason == "not_member"


async def test_receipts_of_a_large_group_leave_delivered_out_but_for_one_member(
    node: RunningNode,
) -> None:
    ada = unique("ada")
    others = [unique("m") for _ in range(RECEIPTS_DELIVERED_MAX_MEMBERS)]
    cid = await _group(node, ada, *others)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a:
        await a.join(topic)
        seq = await _send(a, topic, "m1", "hello")
        await a.push(topic, "mark_delivered", {"seq": seq})
        receipts = (await a.push(topic, "get_receipts", {}))["receipts"]
        assert len(receipts) == RECEIPTS_DELIVERED_MAX_MEMBERS + 1
        assert {r["delivered_seq"] for r in receipts} == {None}
        mine = (await a.push(topic, "get_receipts", {"user_id": ada}))["receipts"]
        assert mine == [{"user_id": ada, "read_seq": 0, "delivered_seq": seq}]


async def test_list_thread_pages_the_replies_to_one_message(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        await b.join(topic)
        root = await _send(a, topic, "root", "a question")
        other = await _send(a, topic, "other", "another topic")
        replies = []
        for n in range(5):
            replies.append(await _send(b, topic, f"r{n}", f"answer {n}", reply_to=root))
            await _send(a, topic, f"x{n}", "elsewhere", reply_to=other)

        pages: list[list[int]] = []
        after = 0
        while True:
            page = await a.push(topic, "list_thread", {"seq": root, "after_seq": after, "limit": 2})
            seqs = [m["seq"] for m in page["messages"]]
            assert all(m["reply_to"] == root for m in page["messages"])
            pages.append(seqs)
            if len(seqs) < 2:
                break
            after = seqs[-1]
        assert pages == [replies[0:2], replies[2:4], replies[4:5]]

        # A reply hidden by one member is left out of their thread only.
        await a.push(topic, "delete_message", {"seq": replies[0], "for_everyone": False})
        mine = await a.push(topic, "list_thread", {"seq": root})
        theirs = await b.push(topic, "list_thread", {"seq": root})
        assert [m["seq"] for m in mine["messages"]] == replies[1:]
        assert [m["seq"] for m in theirs["messages"]] == replies

        with pytest.raises(ReplyError) as missing:
            await a.push(topic, "list_thread", {"seq": 10_000})
        assert missing.value.reason == "not_found"
        with pytest.raises(ReplyError) as bad:
            await a.push(topic, "list_thread", {"seq": root, "limit": 0})
        assert bad.value.reason == "invalid"


async def test_mentions_are_members_only_counted_and_cleared_on_read(node: RunningNode) -> None:
    ada, bob, cy, zed = unique("ada"), unique("bob"), unique("cy"), unique("zed")
    cid = await _group(node, ada, bob, cy)
    topic, bobs_own = f"conversation:{cid}", f"user:{bob}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        first = await _send(a, topic, "m1", f"hi @{bob} and @{zed}, @{cy}. mail {ada}@x.org")
        plain = await _send(a, topic, "m2", "no mention")
        given = await _send(
            a, topic, "m3", "sealed", metadata={"e2e": True, "mentions": [bob, zed, ada]}
        )
        await b.join(topic)
        history = await b.push(topic, "history", {"after_seq": 0})
        mentions = {m["seq"]: m["metadata"].get("mentions") for m in history["messages"]}
        # The sender is never one; a non-member is dropped; e2e keeps the client's list.
        assert mentions == {first: [bob, cy], plain: None, given: [bob]}

        joined = await b.join(bobs_own)
        assert joined["unread"] == {cid: 3}
        assert joined["mentions"] == {cid: 2}

        listed = await b.push(bobs_own, "list_conversations", {})
        assert [(c["unread_count"], c["mention_count"]) for c in listed["conversations"]] == [
            (3, 2)
        ]

        await b.push(topic, "mark_read", {"seq": first})
        assert (await b.join(bobs_own))["mentions"] == {cid: 1}
        await b.push(topic, "mark_read", {"seq": given})
        rejoined = await b.join(bobs_own)
        assert (rejoined["unread"], rejoined["mentions"]) == ({cid: 0}, {})
