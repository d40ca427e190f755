"""The node's root tree: every service up in order, the store and broker open, clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.conversation import Draft
from supervisors import Shutdown, stop_tree
from whispr.bench.nodes import free_port
from whispr.config import Settings, load_settings
from whispr.node import Node, start_root

SERVICES = [
    "telemetry",
    "store",
    "broker",
    "presence",
    "siblings",
    "conversations",
    "messaging",
    "connections",
    "scheduler",
    "grpc",
    "gateway",
]


def _settings(tmp_path: Path) -> Settings:
    """An embedded node on ports nobody else uses."""
    return load_settings(
        env={
            "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
            "WHISPR_PORT": "0",
            "WHISPR_GRPC_PORT": str(free_port()),
        }
    )


async def test_the_embedded_node_starts_and_stops_cleanly(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = Node(settings)
    root = start_root(node)
    await root.started()
    children = await root.proxy().which_children()
    assert [c.id for c in children] == SERVICES
    assert all(node.whereis(name) is not None for name in SERVICES)
    assert node.store is not None
    assert await node.store.ping()
    assert node.broker is not None
    assert await node.broker.ping()
    assert node.messaging is not None
    assert isinstance(await stop_tree(root, deadline=10), Shutdown)
    assert node.store is None
    assert node.broker is None
    assert all(node.whereis(name) is None for name in SERVICES)


async def test_a_crashed_store_restarts_everything_after_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = Node(settings)
    root = start_root(node)
    await root.started()
    before = {c.id: c.ref for c in await root.proxy().which_children()}
    store_ref = node.whereis("store")
    assert store_ref is not None
    store_ref.kill("test")
    await store_ref.wait_exit()
    for _ in range(200):
        after = {c.id: c.ref for c in await root.proxy().which_children()}
        if (
            all(ref is not None and ref.is_alive() for ref in after.values())
            and after["gateway"] is not before["gateway"]
        ):
            break
        await asyncio.sleep(0.01)
    assert after["telemetry"] is before["telemetry"]  # started before the store: kept
    assert all(after[name] is not before[name] for name in SERVICES[1:])  # rest_for_one
    assert node.store is not None
    assert await node.store.ping()
    await stop_tree(root, deadline=10)


async def test_the_node_serves_messaging_through_its_own_tree(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = Node(settings)
    root = start_root(node)
    await root.started()
    assert node.messaging is not None
    group = await node.messaging.create_group("ada", "tea", ["bob"])
    sent = await node.messaging.send("ada", group.id, Draft(client_id="c1", content="hi"))
    assert sent.seq == 1
    conversations = node.whereis("conversations")
    assert conversations is not None
    counts = await conversations.proxy().count_children()
    assert counts.active == 1
    assert isinstance(await stop_tree(root, deadline=10), Shutdown)
    assert node.messaging is None
