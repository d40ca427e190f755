"""What goes wrong at the edges: slow readers, crashing channels, dead nodes' presences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets
from websockets.exceptions import ConnectionClosed

from actors.events import encode_event
from supervisors import stop_tree
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.broker import MemoryBroker
from whispr.gateway.presence import MemoryPresence, RedisPresence


@pytest.fixture
async def small_node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node(
        {"WHISPR_SQLITE_PATH": str(tmp_path / "node.db"), "WHISPR_OUTBOUND_BUFFER_BYTES": "65536"}
    )
    yield running
    await stop_tree(running.root, deadline=10)


async def test_a_client_that_does_not_read_is_disconnected_with_1013(
    small_node: RunningNode,
) -> None:
    node = small_node
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    url = f"{node.url}?vsn=2.0.0&token={node.token(bob)}"
    async with websockets.connect(url, max_queue=1, ping_interval=None) as ws:
        await ws.send(f'["1","1","{topic}","phx_join",{{}}]')
        assert '"status":"ok"' in str(await ws.recv())
        # The client stops reading; the node keeps publishing to it.
        blob = {"user_id": ada, "typing": True, "pad": "x" * 8_000}
        for _ in range(4_000):
            node.node.broker.get().publish(topic, encode_event("user_typing", blob))
            await asyncio.sleep(0)
        assert await _read_until_closed(ws) == 1013
    # The node itself is fine.
    async with node.client(ada) as a:
        assert "unread" in await a.join(f"user:{ada}")


async def _read_until_closed(ws: websockets.ClientConnection) -> int | None:
    async with asyncio.timeout(20):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return ws.close_code


async def test_a_crashing_channel_gets_phx_error_and_can_rejoin(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bob = unique("ada"), unique("bob")
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    async with node.client(ada) as a:
        await a.join(topic)
        await a.join(f"user:{ada}")

        async def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("a bug in a handler")

        monkeypatch.setattr(messaging, "history", broken)
        pushed = a.push_nowait(topic, "history", {})
        crashed = await a.next_event(topic, "phx_error")
        assert crashed.payload == {"reason": "channel_crash"}
        pushed.cancel()
        monkeypatch.undo()
        # The connection and its other channel carry on; the crashed one rejoins.
        assert "conversations" in await a.push(f"user:{ada}", "list_conversations", {})
        await a.join(topic)
        assert (await a.push(topic, "history", {}))["messages"] == []


async def test_the_presences_of_a_dead_node_disappear(redis_url: str) -> None:
    broker = MemoryBroker()
    prefix = unique("p")
    topic = f"conversation:{unique('c')}"
    diffs: list[dict[str, object]] = []
    await broker.subscribe(topic, lambda _t, data: diffs.append(_diff(data)))
    dying = RedisPresence(redis_url, broker, "dying", node_ttl_s=1.0, prefix=prefix)
    alive = RedisPresence(
        redis_url, broker, "alive", node_ttl_s=1.0, sweep_interval_s=0.2, prefix=prefix
    )
    await dying.start()
    await alive.start()
    try:
        await dying.track(topic, "ada", {"device": "phone"})
        await alive.track(topic, "bob", {"device": "web"})
        assert set(await alive.state(topic)) == {"ada", "bob"}
        # The dying node stops refreshing its liveness, as a SIGKILLed process would.
        assert dying._task is not None
        dying._task.cancel()
        for _ in range(100):
            if any("ada" in d.get("leaves", {}) for d in diffs):  # type: ignore[operator]
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the dead node's presence was never removed")
        assert set(await alive.state(topic)) == {"bob"}
    finally:
        await alive.stop()
        dying._tracked.clear()
        await dying.stop()


async def test_a_node_that_has_just_started_shows_in_the_state_at_once(redis_url: str) -> None:
    broker = MemoryBroker()
    prefix = unique("p")
    topic = f"conversation:{unique('c')}"
    first = RedisPresence(redis_url, broker, "first", prefix=prefix)
    late = RedisPresence(redis_url, broker, "late", prefix=prefix)
    await first.start()
    try:
        await first.track(topic, "ada", {"device": "phone"})
        assert set(await first.state(topic)) == {"ada"}
        await late.start()
        await late.track(topic, "bob", {"device": "web"})
        assert set(await first.state(topic)) == {"ada", "bob"}
        # A node seen alive is believed for a second without asking Redis; its metas go
        # with it all the same once the sweep removes them.
        assert "late" in first._seen_alive
    finally:
        await first.stop()
        await late.stop()


async def test_joins_and_leaves_arriving_together_share_their_redis_round_trips(
    redis_url: str,
) -> None:
    broker = MemoryBroker()
    prefix = unique("p")
    topics = [f"conversation:{unique('c')}" for _ in range(5)]
    presence = RedisPresence(redis_url, broker, "batched", prefix=prefix)
    leaves: list[bytes] = []
    for topic in topics:
        await broker.subscribe(topic, lambda _t, data: leaves.append(data))
    await presence.start()
    try:
        # More at once than the Redis client has connections (100): one each used to fail.
        users = [f"u{n}" for n in range(300)]
        refs = await asyncio.gather(
            *(presence.track(topics[n % 5], user, {"device": "d"}) for n, user in enumerate(users))
        )
        states = await asyncio.gather(*(presence.state(topics[n % 5]) for n in range(300)))
        for n, state in enumerate(states):
            assert set(state) == set(users[n % 5 :: 5])
        assert presence._tracks.batches < 300
        assert presence._reads.batches < 300
        leaves.clear()
        await asyncio.gather(
            *(
                presence.untrack(topics[n % 5], user, ref)
                for n, (user, ref) in enumerate(zip(users, refs, strict=True))
            )
        )
        assert len(leaves) == 300
        assert [await presence.state(topic) for topic in topics] == [{}] * 5
        assert presence._untracks.batches < 300
    finally:
        await presence.stop()


async def test_a_meta_untracked_twice_leaves_once_and_counts_at_zero_leave_no_field(
    redis_url: str,
) -> None:
    broker = MemoryBroker()
    prefix = unique("p")
    topic = f"conversation:{unique('c')}"
    presence = RedisPresence(redis_url, broker, "once", prefix=prefix)
    diffs: list[bytes] = []
    await broker.subscribe(topic, lambda _t, data: diffs.append(data))
    await presence.start()
    client = aioredis.from_url(redis_url)
    try:
        ref = await presence.track(topic, "ada", {"device": "phone"})
        assert await client.smembers(f"{prefix}:presence:topics:once") == {topic.encode()}
        assert b"once" in await client.smembers(f"{prefix}:presence:nodes")
        diffs.clear()
        # Both in one batch: the first removes the meta, the second finds it gone.
        await asyncio.gather(
            presence.untrack(topic, "ada", ref), presence.untrack(topic, "ada", ref)
        )
        assert [_diff(data)["leaves"] for data in diffs] == [
            {"ada": {"metas": [{"device": "phone", "phx_ref": ref}]}}
        ]
        assert await presence.state(topic) == {}
        presence.device_connected("ada")
        presence.device_connected("ada")
        presence.device_connected("bob")
        assert await _eventually_online(presence, ["ada", "bob"], {"ada", "bob"}) == {"ada", "bob"}
        presence.device_disconnected("ada")
        presence.device_disconnected("ada")
        assert await _eventually_online(presence, ["ada", "bob"], {"bob"}) == {"bob"}
        assert await client.hgetall(f"{prefix}:presence:devices:once") == {b"bob": b"1"}
    finally:
        await client.aclose()
        await presence.stop()


def _diff(data: bytes) -> dict[str, object]:
    import msgspec

    name, _, payload = data.partition(b"\n")
    assert name == b"presence_diff"
    result: dict[str, object] = msgspec.json.decode(payload)
    return result


async def _eventually_online(presence: Any, users: list[str], expected: set[str]) -> set[str]:
    online: set[str] = set()
    for _ in range(100):
        online = await presence.online(users)
        if online == expected:
            break
        await asyncio.sleep(0.02)
    return online


async def test_online_users_across_nodes_and_a_dead_node_counts_offline(redis_url: str) -> None:
    broker = MemoryBroker()
    prefix = unique("p")
    one = RedisPresence(redis_url, broker, "one", node_ttl_s=1.0, prefix=prefix)
    two = RedisPresence(redis_url, broker, "two", node_ttl_s=1.0, prefix=prefix)
    await one.start()
    await two.start()
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    users = [ada, bob, cy]
    try:
        one.device_connected(ada)
        one.device_connected(ada)  # two devices
        two.device_connected(bob)
        assert await _eventually_online(one, users, {ada, bob}) == {ada, bob}
        assert await _eventually_online(two, users, {ada, bob}) == {ada, bob}
        one.device_disconnected(ada)  # one device left
        two.device_connected(cy)
        two.device_disconnected(cy)
        assert await _eventually_online(two, users, {ada, bob}) == {ada, bob}
        one.device_disconnected(ada)
        assert await _eventually_online(two, users, {bob}) == {bob}
        # A node that stops refreshing its liveness takes its users offline with it.
        two.device_connected(cy)
        assert await _eventually_online(one, users, {bob, cy}) == {bob, cy}
        assert two._task is not None
        two._task.cancel()
        assert await _eventually_online(one, users, set()) == set()
    finally:
        await one.stop()
        await two.stop()


async def test_online_users_on_one_node() -> None:
    presence = MemoryPresence(MemoryBroker())
    presence.device_connected("ada")
    presence.device_connected("ada")
    presence.device_disconnected("ada")
    assert await presence.online(["ada", "bob"]) == {"ada"}
    presence.device_disconnected("ada")
    assert await presence.online(["ada", "bob"]) == set()
