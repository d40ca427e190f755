"""Group administration over real sockets, on both stores (``node``) and across two nodes.

Every event of whispr/gateway/channels/admin.py: its reply, the events every member's
devices receive, the system message a later catch-up shows, and its refusals (``forbidden``
naming the right). A removed member's channel closes on whichever node its socket is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from supervisors import stop_tree
from tests import services
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


async def _system_events(client: PhoenixClient, topic: str, count: int) -> list[dict[str, Any]]:
    """The next ``count`` system messages' metadata on ``topic``."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        event = await client.next_event(topic, "new_message")
        message = event.payload["message"]
        if message["kind"] == "system":
            found.append(message["metadata"])
    return found


async def test_every_operation_over_the_socket(node: RunningNode) -> None:
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    async with (
        node.client(ada) as a,
        node.client(bob, "phone") as b1,
        node.client(bob, "laptop") as b2,
        node.client(cy) as c,
    ):
        cid = await _group(a, ada, [bob])
        topic = f"conversation:{cid}"
        for client in (a, b1, b2):
            await client.join(topic, {})

        # add_members (owner): the reply lists who was added; every member's devices hear it.
        reply = await a.push(topic, "add_members", {"user_ids": [cy, bob]})
        assert [(m["user_id"], m["role"]) for m in reply["members"]] == [(cy, "member")]
        for device in (b1, b2):
            event = await device.next_event(topic, "member_added")
            assert [m["user_id"] for m in event.payload["members"]] == [cy]
            assert event.payload["by"] == ada
        await c.join(topic, {})

        # set_role (owner only).
        reply = await a.push(topic, "set_role", {"user_id": bob, "role": "admin"})
        assert (reply["member"]["user_id"], reply["member"]["role"]) == (bob, "admin")
        for device in (b1, b2, c):
            event = await device.next_event(topic, "member_updated")
            assert (event.payload["member"]["role"], event.payload["by"]) == ("admin", ada)
        refused = await _refused(b1, topic, "set_role", {"user_id": cy, "role": "admin"})
        assert (refused["reason"], refused["right"]) == ("forbidden", "set_role")

        # update_conversation (admins): title, description, settings.
        changes = {"title": "renamed", "description": "about", "settings": {"who_can_add": "all"}}
        reply = await b2.push(topic, "update_conversation", changes)
        conversation = reply["conversation"]
        assert (conversation["title"], conversation["description"]) == ("renamed", "about")
        assert conversation["settings"] == {"who_can_post": "all", "who_can_add": "all"}
        for device in (a, b1, c):
            event = await device.next_event(topic, "conversation_updated")
            assert event.payload["conversation"]["title"] == "renamed"
        refused = await _refused(c, topic, "update_conversation", {"title": "mine"})
        assert (refused["reason"], refused["right"]) == ("forbidden", "update_info")
        refused = await _refused(c, topic, "update_conversation", {"colour": "red"})
        assert refused["reason"] == "invalid"

        # who_can_add=all: a plain member adds someone.
        dee = unique("dee")
        reply = await c.push(topic, "add_members", {"user_ids": [dee]})
        assert [m["user_id"] for m in reply["members"]] == [dee]

        # list_members, paged: every member once, oldest first, with roles.
        seen: list[tuple[str, str]] = []
        after = None
        while True:
            page = await c.push(topic, "list_members", {"after": after, "limit": 3})
            assert len(page["members"]) <= 3
            seen += [(m["user_id"], m["role"]) for m in page["members"]]
            if page["next"] is None:
                break
            after = page["next"]
        assert seen[2:] == [(cy, "member"), (dee, "member")]
        assert sorted(seen[:2]) == sorted([(ada, "owner"), (bob, "admin")])

        # transfer_ownership (owner only): the former owner stays as an admin.
        reply = await a.push(topic, "transfer_ownership", {"user_id": bob})
        assert [(m["user_id"], m["role"]) for m in reply["members"]] == [
            (bob, "owner"),
            (ada, "admin"),
        ]

        # remove_member: the removed member's channel gets member_removed, then phx_close.
        refused = await _refused(a, topic, "remove_member", {"user_id": bob})
        assert (refused["reason"], refused["right"]) == ("forbidden", "remove_owner")
        assert await b1.push(topic, "remove_member", {"user_id": cy}) == {"user_id": cy}
        event = await c.next_event(topic, "member_removed")
        assert event.payload == {"user_id": cy, "by": bob}
        await c.next_event(topic, "phx_close")
        with pytest.raises(ReplyError) as caught:
            await c.join(topic, {})
        assert caught.value.reason == "not_member"

        # leave: the reply, then the leaver's channel closes; the others hear member_removed.
        assert await a.push(topic, "leave", {}) == {}
        await a.next_event(topic, "phx_close")
        removals = [(await b2.next_event(topic, "member_removed")).payload for _ in range(2)]
        assert removals == [{"user_id": cy, "by": bob}, {"user_id": ada, "by": ada}]

        # Each change is a system message in the conversation's order: catch-up shows them.
        async with node.client(bob, "tablet") as b3:
            await b3.join(topic, {"last_seq": 0})
            events = await _system_events(b3, topic, 7)
        assert [e["event"] for e in events] == [
            "member_added",
            "role_changed",
            "conversation_updated",
            "member_added",
            "ownership_transferred",
            "member_removed",
            "member_left",
        ]


async def test_the_owner_leaving_hands_the_group_to_the_oldest_admin(node: RunningNode) -> None:
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    async with node.client(ada) as a, node.client(cy) as c:
        cid = await _group(a, ada, [bob, cy])
        topic = f"conversation:{cid}"
        await a.join(topic, {})
        await c.join(topic, {})
        await a.push(topic, "set_role", {"user_id": cy, "role": "admin"})
        await c.next_event(topic, "member_updated")
        await a.push(topic, "leave", {})
        event = await c.next_event(topic, "member_updated")
        assert (event.payload["member"]["user_id"], event.payload["member"]["role"]) == (
            cy,
            "owner",
        )
        assert event.payload["by"] == "system"
        page = await c.push(topic, "list_members", {})
        assert {m["user_id"]: m["role"] for m in page["members"]} == {bob: "member", cy: "owner"}
        history = await c.push(topic, "history", {"after_seq": 0})
        assert [
            (m["metadata"]["event"], m["metadata"]["user_id"]) for m in history["messages"]
        ] == [
            ("role_changed", cy),
            ("member_left", ada),
            ("ownership_transferred", cy),
        ]


async def test_who_can_post_admins_over_the_socket(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    async with node.client(ada) as a, node.client(bob) as b:
        cid = await _group(a, ada, [bob])
        topic = f"conversation:{cid}"
        await a.join(topic, {})
        await b.join(topic, {})
        await a.push(topic, "update_conversation", {"settings": {"who_can_post": "admins"}})
        refused = await _refused(b, topic, "send_message", {"client_id": "1", "content": "hi"})
        assert (refused["reason"], refused["right"]) == ("forbidden", "post")
        sent = await a.push(topic, "send_message", {"client_id": "1", "content": "hi"})
        assert sent["seq"] > 0


# -- two nodes ------------------------------------------------------------------------------


@pytest.fixture
async def two_nodes(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    async with services.private_schema(postgres_url) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("admin"),
        }
        first = await start_node({**env, "WHISPR_NODE_NAME": unique("a")})
        try:
            second = await start_node({**env, "WHISPR_NODE_NAME": unique("b")})
            try:
                yield first, second
            finally:
                await stop_tree(second.root, deadline=10)
        finally:
            await stop_tree(first.root, deadline=10)


@pytest.mark.services
async def test_a_member_removed_on_one_node_loses_the_channel_on_the_other(
    two_nodes: tuple[RunningNode, RunningNode],
) -> None:
    node_a, node_b = two_nodes
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    async with node_a.client(ada) as a, node_b.client(bob) as b, node_b.client(cy) as c:
        cid = await _group(a, ada, [bob, cy])
        topic = f"conversation:{cid}"
        await a.join(topic, {})
        await b.join(topic, {})
        await c.join(topic, {})
        # A change on node A reaches node B's members, and node B's actor sees the new role.
        await a.push(topic, "set_role", {"user_id": bob, "role": "admin"})
        event = await b.next_event(topic, "member_updated")
        assert event.payload["member"]["role"] == "admin"
        await a.push(topic, "remove_member", {"user_id": cy})
        event = await c.next_event(topic, "member_removed")
        assert event.payload["user_id"] == cy
        await c.next_event(topic, "phx_close")
        with pytest.raises(ReplyError) as caught:
            await c.join(topic, {})
        assert caught.value.reason == "not_member"
        # The admin made on node A removes on node B (its actor reloaded the roles).
        dee = unique("dee")
        await a.push(topic, "add_members", {"user_ids": [dee]})
        await b.next_event(topic, "member_added")
        assert await b.push(topic, "remove_member", {"user_id": dee}) == {"user_id": dee}
        removals = [(await a.next_event(topic, "member_removed")).payload for _ in range(2)]
        assert removals == [{"user_id": cy, "by": ada}, {"user_id": dee, "by": bob}]


async def test_a_target_id_that_is_not_valid_text_is_refused_naming_it(node: RunningNode) -> None:
    # A user id with a lone surrogate was quoted into a not_found reply that could not be
    # encoded: the connection actor crashed (close 1011). Now: invalid, naming user_id.
    ada, bob = unique("ada"), unique("bob")
    async with node.client(ada) as a:
        topic = f"conversation:{await _group(a, ada, [bob])}"
        await a.join(topic)
        for n, event in enumerate(["remove_member", "transfer_ownership", "set_role"]):
            extra = ',"role":"admin"' if event == "set_role" else ""
            payload = f'{{"user_id":"b\\udfff"{extra}}}'
            await a.send_raw(f'["{a.join_ref(topic)}","s{n}","{topic}","{event}",{payload}]')
            reply = await a.next_event(topic, "phx_reply")
            assert reply.payload["status"] == "error", event
            assert reply.payload["response"]["reason"] == "invalid", reply.payload
            assert reply.payload["response"]["field"] == "user_id", reply.payload
        too_long = await _refused(a, topic, "remove_member", {"user_id": "x" * 201})
        assert (too_long["reason"], too_long["field"]) == ("invalid", "user_id")
        added = await _refused(a, topic, "add_members", {"user_ids": ["x" * 201]})
        assert (added["reason"], added["field"]) == ("invalid", "user_ids")
        assert a.closed is None
        await a.push(topic, "send_message", {"client_id": "after", "content": "still here"})
