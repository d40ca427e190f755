"""Typing ends on the server: after silence, and when the typer's socket goes, seen by a
member on another node (``user_typing`` with ``typing`` false)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import EACH_STORE, RunningNode, node_on_store, start_node, unique
from whispr.client import PhoenixClient

TIMEOUT_S = 1.0


async def _typing(client: PhoenixClient, topic: str, timeout: float = 10.0) -> dict[str, Any]:
    return (await client.next_event(topic, "user_typing", timeout=timeout)).payload


@pytest.fixture
async def pair(
    request: pytest.FixtureRequest, postgres_url: str, redis_url: str
) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    """Two nodes of one cluster; the typing timeout is the indirect parameter, if any."""
    timeout = getattr(request, "param", TIMEOUT_S)
    async with services.private_schema(postgres_url) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("pair"),
            "WHISPR_TYPING_TIMEOUT_S": str(timeout),
        }
        a = await start_node({**env, "WHISPR_NODE_NAME": unique("a")})
        b = await start_node({**env, "WHISPR_NODE_NAME": unique("b")})
        try:
            yield a, b
        finally:
            await stop_tree(a.root, deadline=10)
            await stop_tree(b.root, deadline=10)


async def _conversation(node: RunningNode, owner: str, member: str) -> str:
    messaging = node.node.messaging.get()
    return "conversation:" + (await messaging.create_group(owner, "t", [member])).id


async def test_typing_not_renewed_expires_for_a_member_on_another_node(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    a, b = pair
    ada, bob = unique("ada"), unique("bob")
    topic = await _conversation(a, ada, bob)
    async with a.client(ada, "phone") as typer, b.client(bob, "web") as watcher:
        await watcher.join(topic)
        await typer.join(topic)
        began = time.monotonic()
        await typer.push(topic, "typing_start", {})
        assert await _typing(watcher, topic) == {
            "user_id": ada,
            "device_id": "phone",
            "typing": True,
        }
        # A renewal before the timeout keeps it going.
        await typer.push(topic, "typing_start", {})
        renewed = time.monotonic()
        assert (await _typing(watcher, topic))["typing"] is True
        stopped = await _typing(watcher, topic)
        ended = time.monotonic()
        assert stopped == {"user_id": ada, "device_id": "phone", "typing": False}
        assert ended - renewed >= TIMEOUT_S * 0.9  # the renewal counted
        assert ended - began < TIMEOUT_S * 2 + 3
        # Ended once: nothing more comes.
        await typer.push(topic, "send_message", {"client_id": "x", "content": "done"})
        rest = []
        while (event := await watcher.next_event(topic)).event != "new_message":
            rest.append(event.event)
        assert "user_typing" not in rest


@pytest.mark.parametrize("pair", [3600.0], indirect=True)
async def test_typing_ends_when_the_typers_socket_goes(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    a, b = pair
    ada, bob = unique("ada"), unique("bob")
    topic = await _conversation(a, ada, bob)
    async with b.client(bob, "web") as watcher:
        await watcher.join(topic)
        async with a.client(ada, "phone") as typer:
            await typer.join(topic)
            await typer.push(topic, "typing_start", {})
            assert (await _typing(watcher, topic))["typing"] is True
        # The socket is closed: the indicator ends at once, long before the timeout.
        assert await _typing(watcher, topic, timeout=5) == {
            "user_id": ada,
            "device_id": "phone",
            "typing": False,
        }


@pytest.fixture(params=EACH_STORE)
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningNode]:
    """One node on either store, typing timeout of 1 s."""
    env = {"WHISPR_TYPING_TIMEOUT_S": str(TIMEOUT_S)}
    async with node_on_store(request, tmp_path, env) as running:
        yield running


async def test_typing_stop_and_leave_end_it_on_either_store(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = await _conversation(node, ada, bob)
    async with node.client(ada, "phone") as typer, node.client(bob, "web") as watcher:
        await watcher.join(topic)
        await typer.join(topic)
        await typer.push(topic, "typing_start", {})
        assert (await _typing(watcher, topic))["typing"] is True
        await typer.push(topic, "typing_stop", {})
        assert (await _typing(watcher, topic))["typing"] is False
        # Stopped: its timer is gone, no second "false" comes when it would have fired.
        with pytest.raises(TimeoutError):
            await _typing(watcher, topic, timeout=TIMEOUT_S * 1.5)
        await typer.push(topic, "typing_start", {})
        assert (await _typing(watcher, topic))["typing"] is True
        await typer.leave(topic)
        assert (await _typing(watcher, topic, timeout=TIMEOUT_S / 2))["typing"] is False
