"""A connection's objects are freed by reference counting, not left for the cyclic collector.

The node's collector thresholds (whispr/gc_policy.py) make full collections very rare, so
what a closed connection leaves in reference cycles stays in memory for a long time. Before
these tests, each reconnect left about 85 objects of the node's in cycles (its connection
actor, conversation channel and stream, typing indicator, websockets connection and
buffers), a ``user:`` channel about 80 more, and each closed ``PhoenixClient`` about 110.
With the collector off, one connection's life (join, send, receive, type, leave,
disconnect) must leave no cyclic garbage of the project's or websockets' objects.
(asyncio's selector transport is a cycle of its own, with a bound method of itself: the
standard library's, a few small objects per socket, not counted.)
"""

from __future__ import annotations

import asyncio
import base64
import gc
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.gateway.conftest import RunningNode, unique
from whispr.gateway.channels.typing import TypingIndicator

#: Modules whose objects a closed connection must not leave in cycles.
_OWN = ("whispr.", "actors.", "supervisors.", "websockets.")


@contextmanager
def _cyclic_garbage() -> Iterator[Counter[str]]:
    """Count, by type, what the collector alone could free of what the block leaves."""
    counts: Counter[str] = Counter()
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield counts
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            for obj in gc.garbage:
                kind = type(obj)
                counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    finally:
        if was_enabled:
            gc.enable()


async def test_a_connections_life_leaves_no_cyclic_garbage(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    async with node.client(bob) as b:
        await b.join(topic)
        # Warm-up: what a first connection creates once for all (caches, pools, actors).
        async with node.client(ada) as a:
            await a.join(topic, {"last_seq": 0})
            await a.push(topic, "send_message", {"client_id": "warm", "content": "x"})
            await a.join(f"user:{ada}")
        await b.next_event(topic, "new_message")
        await _connections_closed_but(node, 1)
        with _cyclic_garbage() as garbage:
            for n in range(3):
                async with node.client(ada) as a:
                    await a.join(topic, {"last_seq": 0})
                    await a.join(f"user:{ada}")
                    await a.push(topic, "typing_start", {})
                    await a.push(topic, "send_message", {"client_id": f"m{n}", "content": "x"})
                    await b.next_event(topic, "new_message")
                    await a.leave(topic)
                await _connections_closed_but(node, 1)
    own = {kind: count for kind, count in garbage.items() if kind.startswith(_OWN)}
    assert own == {}


async def _connections_closed_but(node: RunningNode, left: int) -> None:
    connections = node.node.gateway.get().ctx.connections
    for _ in range(500):
        if len(connections) <= left:
            break
        await asyncio.sleep(0.01)
    assert len(connections) == left
    for _ in range(10):  # the actors' and sockets' last callbacks
        await asyncio.sleep(0)


async def test_phoenix_is_chosen_as_the_subprotocol_only_when_offered(node: RunningNode) -> None:
    ada = unique("ada")
    token = base64.urlsafe_b64encode(node.token(ada).encode()).decode().rstrip("=")
    bearer = Subprotocol(f"base64url.bearer.phx.{token}")
    url = node.url + "?vsn=2.0.0"
    phoenix = Subprotocol("phoenix")
    async with connect(url, subprotocols=[phoenix, bearer]) as ws:
        assert ws.subprotocol == "phoenix"
    async with connect(url, subprotocols=[bearer]) as ws:
        assert ws.subprotocol is None


def test_an_ended_typing_indicator_lets_go_of_its_channels_callback() -> None:
    class Channel:
        def __init__(self) -> None:
            self.typing = TypingIndicator(self.publish, 5.0)

        def publish(self, typing: bool) -> None: ...

    channel = Channel()
    channel.typing.end()
    gone = weakref.ref(channel)
    gc.disable()
    try:
        del channel
        assert gone() is None
    finally:
        gc.enable()
