"""Broker contract: the in-process broker and Redis pub/sub behave alike.

The Redis tests run against a real server, several brokers standing for
several nodes; the chaos test kills a private redis-server mid-stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.broker.conftest import RedisProcess
from whispr.broker import MemoryBroker, RedisBroker
from whispr.broker import redis as redis_broker


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.events.append((topic, payload))


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        instance: Any = MemoryBroker(node_id="n1")
    else:
        redis_url = request.getfixturevalue("redis_url")
        instance = RedisBroker(redis_url, node_id="n1", prefix=f"t{uuid.uuid4().hex[:8]}")
    await instance.open()
    yield instance
    await instance.close()


async def test_local_subscribers_get_each_event_once_in_order(broker: Any) -> None:
    first, second = Recorder(), Recorder()
    await broker.subscribe("conversation:1", first)
    await broker.subscribe("conversation:1", second)
    for n in range(100):
        broker.publish("conversation:1", str(n).encode())
    await broker.flush()
    await asyncio.sleep(0.05)  # a copy echoed back by Redis would arrive by now
    expected = [("conversation:1", str(n).encode()) for n in range(100)]
    assert first.events == expected
    assert second.events == expected


async def test_cancelled_subscription_gets_nothing(broker: Any) -> None:
    kept, cancelled = Recorder(), Recorder()
    await broker.subscribe("t", kept)
    subscription = await broker.subscribe("t", cancelled)
    subscription.cancel()
    subscription.cancel()  # idempotent
    broker.publish("t", b"x")
    await broker.flush()
    assert kept.events == [("t", b"x")]
    assert cancelled.events == []


async def test_other_topics_are_not_delivered(broker: Any) -> None:
    recorder = Recorder()
    await broker.subscribe("a", recorder)
    broker.publish("b", b"x")
    await broker.flush()
    assert recorder.events == []


async def test_a_failing_handler_does_not_stop_the_others(broker: Any) -> None:
    def failing(topic: str, payload: bytes) -> None:
        raise RuntimeError("handler bug")

    recorder = Recorder()
    await broker.subscribe("t", failing)
    await broker.subscribe("t", recorder)
    broker.publish("t", b"x")
    await broker.flush()
    assert recorder.events == [("t", b"x")]


@pytest.fixture
async def two_nodes(redis_url: str) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    a = RedisBroker(redis_url, node_id="a", prefix=prefix)
    b = RedisBroker(redis_url, node_id="b", prefix=prefix)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def test_events_cross_nodes_once_and_in_order(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, b = two_nodes
    on_a, on_b = Recorder(), Recorder()
    await a.subscribe("conversation:9", on_a)
    await b.subscribe("conversation:9", on_b)
    for n in range(1000):
        a.publish("conversation:9", n.to_bytes(4, "big"))
    await a.flush()
    expected = [("conversation:9", n.to_bytes(4, "big")) for n in range(1000)]
    await eventually(lambda: len(on_b.events) >= 1000)
    await asyncio.sleep(0.05)
    assert on_b.events == expected
    assert on_a.events == expected  # local delivery, and the echo from Redis skipped


async def test_a_backlog_crosses_in_several_script_calls_in_order(
    two_nodes: tuple[RedisBroker, RedisBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_broker, "_PUBLISH_ARGS", 3 * 7)
    a, b = two_nodes
    on_b = Recorder()
    await b.subscribe("conversation:7", on_b)
    for n in range(100):  # in one loop turn: one backlog, 15 calls of at most 7
        a.publish("conversation:7", n.to_bytes(4, "big"))
    await a.flush()
    await eventually(lambda: len(on_b.events) >= 100)
    assert on_b.events == [("conversation:7", n.to_bytes(4, "big")) for n in range(100)]
    assert a.published == 100


async def test_events_no_other_node_listens_to_are_not_sent_back(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, b = two_nodes
    on_a, on_b = Recorder(), Recorder()
    await a.subscribe("conversation:5", on_a)
    for n in range(50):
        a.publish("conversation:5", b"alone %d" % n)
    await a.flush()
    assert (a.published, a.unheard) == (0, 50)  # only a listens: Redis kept them
    await b.subscribe("conversation:5", on_b)
    for n in range(50):
        a.publish("conversation:5", b"together %d" % n)
    await a.flush()
    await eventually(lambda: len(on_b.events) >= 50)
    assert (a.published, a.unheard) == (50, 50)
    assert [p for _, p in on_b.events] == [b"together %d" % n for n in range(50)]
    assert len(on_a.events) == 100  # local delivery either way


async def test_leaving_a_topic_never_silences_its_events_for_other_nodes(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, b = two_nodes
    on_b = Recorder()
    await b.subscribe("conversation:6", on_b)
    for round_ in range(20):
        subscription = await a.subscribe("conversation:6", Recorder())
        # a counts as a subscriber as these are queued, and unsubscribes right after.
        for n in range(10):
            a.publish("conversation:6", b"%d-%d" % (round_, n))
        subscription.cancel()
        for n in range(10, 20):
            a.publish("conversation:6", b"%d-%d" % (round_, n))
    await a.flush()
    await eventually(lambda: len(on_b.events) >= 400)
    assert [p for _, p in on_b.events] == [b"%d-%d" % (r, n) for r in range(20) for n in range(20)]


async def test_subscribe_returns_once_remote_events_are_sure_to_arrive(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, b = two_nodes
    for round_ in range(20):
        recorder = Recorder()
        topic = f"fresh:{round_}"
        await b.subscribe(topic, recorder)
        a.publish(topic, b"right after subscribe")
        await a.flush()
        await eventually(lambda r=recorder: len(r.events) == 1)  # type: ignore[misc]


async def test_unsubscribed_node_stops_receiving(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, b = two_nodes
    recorder = Recorder()
    subscription = await b.subscribe("t", recorder)
    subscription.cancel()
    await asyncio.sleep(0.05)
    a.publish("t", b"x")
    await a.flush()
    await asyncio.sleep(0.1)
    assert recorder.events == []


async def test_ping_reports_redis_reachable(redis_url: str) -> None:
    broker = RedisBroker(redis_url, node_id="p")
    await broker.open()
    try:
        assert await broker.ping()
    finally:
        await broker.close()


@pytest.mark.chaos
async def test_redis_restart_loses_only_live_traffic_and_recovers(
    private_redis: RedisProcess,
) -> None:
    a = RedisBroker(private_redis.url, node_id="a")
    b = RedisBroker(private_redis.url, node_id="b")
    reconnected: list[str] = []
    b.on_reconnect(lambda: reconnected.append("b"))
    await a.open()
    await b.open()
    try:
        on_a, on_b = Recorder(), Recorder()
        await a.subscribe("room", on_a)
        await b.subscribe("room", on_b)
        a.publish("room", b"before")
        await a.flush()
        await eventually(lambda: on_b.events == [("room", b"before")])
        assert reconnected == []  # the first connection is no reconnection

        private_redis.kill()
        a.publish("room", b"during")  # never raises; local delivery goes on
        await a.flush()
        assert on_a.events[-1] == ("room", b"during")
        await eventually(lambda: not b._connected.is_set())
        assert not await b.ping()

        private_redis.start()
        await eventually(lambda: a._connected.is_set() and b._connected.is_set(), timeout=10)
        assert await a.ping()
        a.publish("room", b"after")
        await a.flush()
        await eventually(lambda: on_b.events[-1] == ("room", b"after"), timeout=10)
        assert ("room", b"during") not in on_b.events  # live traffic only, as documented
        assert a.dropped >= 1
        assert reconnected == ["b"]  # told once, so that what was lost is read from the store
    finally:
        await a.close()
        await b.close()


async def test_open_with_redis_down_does_not_block_forever() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0", node_id="x", subscribe_timeout=0.3)
    await asyncio.wait_for(broker.open(), timeout=5)
    try:
        assert not await broker.ping()
        recorder = Recorder()
        await asyncio.wait_for(broker.subscribe("t", recorder), timeout=5)
        broker.publish("t", b"local still works")
        assert recorder.events == [("t", b"local still works")]
    finally:
        await asyncio.wait_for(broker.close(), timeout=5)
