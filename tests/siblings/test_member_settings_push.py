"""Push requests honour the settings members set over their own sockets: a muted conversation
pushes nothing (until unmuted), ``mentions`` pushes only the messages naming the member, and
``none`` nothing; a real node, its gateway and a stand-in notification service on gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from tests.siblings.conftest import StandIn


@pytest.fixture(params=["embedded", pytest.param("services", marks=pytest.mark.services)])
async def node(
    request: pytest.FixtureRequest, tmp_path: Path, stand_in: StandIn
) -> AsyncIterator[RunningNode]:
    """A node whose notification service is the stand-in, on each store."""
    env = {"WHISPR_NOTIFICATION_SERVICE_URL": stand_in.address}
    if request.param == "embedded":
        running = await start_node({**env, "WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
        yield running
        await stop_tree(running.root, deadline=10)
        return
    async with services.private_schema(request.getfixturevalue("postgres_url")) as schema:
        running = await start_node(
            {
                **env,
                "WHISPR_DATABASE_URL": schema.url,
                "WHISPR_REDIS_URL": request.getfixturevalue("redis_url"),
                "WHISPR_REDIS_PREFIX": unique("t"),
                "WHISPR_NODE_NAME": unique("node"),
            }
        )
        yield running
        await stop_tree(running.root, deadline=10)


async def _pushed_for(stand_in: StandIn, message_id: str, expected: int) -> set[str]:
    """The users pushed for one message, once ``expected`` have arrived (and a moment more,
    for any wrong one to arrive too)."""

    def users() -> set[str]:
        return {r.user_id for r in stand_in.pushed.values() if r.message_id == message_id}

    for _ in range(300):
        if len(users()) >= expected:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    return users()


async def _offline(node: RunningNode, *users: str) -> None:
    """Wait until none of ``users`` counts as online (a device's leave reaches presence
    asynchronously), so that a push is decided by the settings alone."""
    presence = node.node.presence.get()
    for _ in range(500):
        if not await presence.online(list(users)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still online: {users}")


async def test_pushes_follow_the_settings_members_set_over_their_sockets(
    node: RunningNode,
    stand_in: StandIn,
) -> None:
    ada, bob, cy, dee, eve = (unique(n) for n in ["ada", "bob", "cy", "dee", "eve"])
    group = await node.node.messaging.get().create_group(ada, "tea", [bob, cy, dee, eve])
    topic = f"conversation:{group.id}"
    async with node.client(ada) as a:
        await a.join(topic)
        for user, change in (
            (bob, {"muted_until": "forever"}),
            (cy, {"notifications": "mentions"}),
            (dee, {"notifications": "none"}),
        ):
            async with node.client(user) as member:
                await member.join(topic)
                await member.push(topic, "update_member_settings", change)
        await _offline(node, bob, cy, dee, eve)

        plain = await a.push(topic, "send_message", {"client_id": "m1", "content": "hello"})
        assert await _pushed_for(stand_in, plain["id"], 1) == {eve}

        named = await a.push(
            topic, "send_message", {"client_id": "m2", "content": f"@{cy} @{bob} @{dee} look"}
        )
        # Mentioned: cy (mentions only) now; bob stays muted, dee wants none.
        assert await _pushed_for(stand_in, named["id"], 2) == {cy, eve}

        async with node.client(bob) as member:
            await member.join(topic)
            await member.push(topic, "update_member_settings", {"muted_until": None})
        await _offline(node, bob)
        unmuted = await a.push(topic, "send_message", {"client_id": "m3", "content": "again"})
        assert await _pushed_for(stand_in, unmuted["id"], 2) == {bob, eve}
