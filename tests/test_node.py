"""The node's root tree: every service up in order, the store and broker open, clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.conversation import Draft
from actors.messaging import Messaging
from supervisors import Shutdown, stop_tree
from whispr.bench.nodes import free_port
from whispr.config import Settings, load_settings
from whispr.node import Node, node_tree, start_root
from whispr.slot import NotStarted

SERVICES = [
    "telemetry",
    "store",
    "audit",
    "broker",
    "presence",
    "siblings",
    "conversations",
    "messaging",
    "connections",
    "scheduler",
    "grpc",
    "gateway",
    "http",
]


def _settings(tmp_path: Path) -> Settings:
    """An embedded node on ports nobody else uses."""
    return load_settings(
        env={
            "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
            "WHISPR_PORT": "0",
            "WHISPR_GRPC_PORT": str(free_port()),
            "WHISPR_HTTP_PORT": str(free_port()),
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
    assert await node.store.get().store.ping()
    assert await node.broker.get().ping()
    assert isinstance(node.messaging.get(), Messaging)
    assert isinstance(await stop_tree(root, deadline=10), Shutdown)
    assert node.store.peek() is None
    assert node.broker.peek() is None
    assert all(node.whereis(name) is None for name in SERVICES)


async def test_a_crashed_store_restarts_everything_after_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = Node(settings)
    root = start_root(node)
    await root.started()
    before = {c.id: c.ref for c in await root.proxy().which_children()}
    old_store = node.store.get()
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
    # The services after the store were started again with the new store.
    store = node.store.get()
    assert store is not old_store
    assert await store.store.ping()
    messaging = node.messaging.get()
    assert messaging.deps.store is store.store
    assert messaging.deps.commit is store.commit
    assert node.gateway.get().ctx.messaging is messaging
    assert node.gateway.get().ctx.broker is node.broker.get()
    assert node.grpc.get().store is store.store
    group = await messaging.create_group("ada", "tea", ["bob"])
    sent = await messaging.send("ada", group.id, Draft(client_id="c1", content="hi"))
    assert sent.seq == 1
    await stop_tree(root, deadline=10)
    # A killed service does not run on_stop: the store it opened is closed here.
    await old_store.commit.close()
    await old_store.store.close()


async def test_the_node_serves_messaging_through_its_own_tree(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = Node(settings)
    root = start_root(node)
    await root.started()
    messaging = node.messaging.get()
    group = await messaging.create_group("ada", "tea", ["bob"])
    sent = await messaging.send("ada", group.id, Draft(client_id="c1", content="hi"))
    assert sent.seq == 1
    conversations = node.whereis("conversations")
    assert conversations is not None
    counts = await conversations.proxy().count_children()
    assert counts.active == 1
    assert isinstance(await stop_tree(root, deadline=10), Shutdown)
    assert node.messaging.peek() is None


async def test_a_service_started_before_what_it_needs_fails_naming_it(tmp_path: Path) -> None:
    # The tree starts each service after those it needs; out of order, the start
    # function fails on the first empty slot, before any actor exists.
    specs = {spec.id: spec for spec in node_tree(Node(_settings(tmp_path)))}
    with pytest.raises(NotStarted, match="the store service is not running") as raised:
        await specs["messaging"].start()
    assert raised.value.service == "store"
    with pytest.raises(NotStarted, match="the broker service is not running"):
        await specs["presence"].start()
