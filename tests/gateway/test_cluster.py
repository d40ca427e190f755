"""Nodes in separate processes on one PostgreSQL and Redis: crossing traffic, SIGKILL, SIGTERM.

Each node is a real ``whispr serve`` process. Clients are :class:`whispr.client.PhoenixClient`
over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests import services
from tests.gateway.conftest import unique
from whispr.auth import issue_token
from whispr.bench.nodes import NodeProcess, start_node_process
from whispr.client import PhoenixClient, ReplyError
from whispr.config import DEV_JWT_SECRET

pytestmark = pytest.mark.services


@dataclass
class Cluster:
    env: dict[str, str]
    nodes: list[NodeProcess] = field(default_factory=list)

    async def start(self, name: str) -> NodeProcess:
        env = {
            **self.env,
            "WHISPR_MAX_CONNECTIONS_PER_IP": "1000",
            "WHISPR_RATE_LIMIT_PER_MINUTE": "100000",
        }
        node = await start_node_process(name, env, timeout=30)
        self.nodes.append(node)
        return node


@pytest.fixture
async def cluster(postgres_url: str, redis_url: str) -> AsyncIterator[Cluster]:
    async with services.private_schema(postgres_url) as schema:
        cluster = Cluster(
            {
                "WHISPR_DATABASE_URL": schema.url,
                "WHISPR_REDIS_URL": redis_url,
                "WHISPR_REDIS_PREFIX": unique("cluster"),
            }
        )
        try:
            yield cluster
        finally:
            for node in cluster.nodes:
                if node.process.returncode is None:
                    node.process.kill()
                await node.process.wait()


def _token(user: str, device: str) -> str:
    return issue_token(user, secret=DEV_JWT_SECRET, device_id=device)


async def _create_group(node: NodeProcess, owner: str, members: list[str]) -> str:
    async with PhoenixClient.connect(node.url, _token(owner, "setup")) as client:
        await client.join(f"user:{owner}")
        created = await client.push(
            f"user:{owner}",
            "create_conversation",
            {"kind": "group", "title": "cluster", "members": members},
        )
        return str(created["conversation"]["id"])


async def test_two_nodes_carry_messages_typing_and_presence_between_them(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start("node-a"), await cluster.start("node-b")
    ada, bob = unique("ada"), unique("bob")
    cid = await _create_group(a, ada, [bob])
    topic = f"conversation:{cid}"
    async with (
        PhoenixClient.connect(a.url, _token(ada, "phone")) as on_a,
        PhoenixClient.connect(b.url, _token(bob, "web")) as on_b,
    ):
        await on_a.join(topic)
        await on_b.join(topic)
        # Presence: Bob's device, tracked on node B, reaches Ada on node A.
        for _ in range(50):
            event = await on_a.next_event(topic, "presence_diff")
            if bob in event.payload["joins"]:
                break
        seen_by_bob = await on_b.next_event(topic, "presence_state")
        assert ada in seen_by_bob.payload
        reply = await on_a.push(topic, "send_message", {"client_id": "x1", "content": "hi"})
        message = await on_b.next_event(topic, "new_message")
        assert message.payload["message"]["seq"] == reply["seq"]
        await on_b.push(topic, "typing_start", {})
        typing = await on_a.next_event(topic, "user_typing")
        assert typing.payload["user_id"] == bob
        reply = await on_b.push(topic, "send_message", {"client_id": "x2", "content": "yo"})
        back = await on_a.next_event(topic, "new_message")
        assert back.payload["message"]["seq"] == reply["seq"] == 2


@dataclass
class Member:
    """A client that keeps sending, and on a lost connection moves to another node."""

    user: str
    device: str
    urls: list[str]
    topic: str
    seen: list[int] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0

    def _on_event(self, event: Any) -> None:
        if event.topic == self.topic and event.event == "new_message":
            self.seen.append(event.payload["message"]["seq"])

    async def run(self, sends: int, stop: asyncio.Event) -> None:
        sent = 0
        index = 0
        while not stop.is_set():
            url = self.urls[index % len(self.urls)]
            try:
                async with PhoenixClient.connect(
                    url, _token(self.user, self.device), on_event=self._on_event
                ) as client:
                    last = max(self.seen, default=0)
                    await client.join(self.topic, {"last_seq": last})
                    while not stop.is_set():
                        if sent < sends:
                            client_id = f"{self.user}-{sent}"
                            payload = {"client_id": client_id, "content": client_id}
                            reply = await client.push(self.topic, "send_message", payload)
                            self.acked[client_id] = reply["seq"]
                            sent += 1
                            await asyncio.sleep(0.01)
                        else:
                            await asyncio.sleep(0.05)
                    await asyncio.sleep(0.5)  # let the last broadcasts arrive
                    return
            except (ConnectionError, ConnectionClosed, InvalidStatus, OSError, TimeoutError):
                pass
            except ReplyError as exc:
                if exc.reason != "unavailable":
                    raise
            self.reconnects += 1
            index += 1
            await asyncio.sleep(0.2)


async def test_a_node_killed_with_sigkill_loses_nothing_acknowledged(cluster: Cluster) -> None:
    a, b = await cluster.start("node-a"), await cluster.start("node-b")
    users = [unique(f"u{n}") for n in range(4)]
    cid = await _create_group(a, users[0], users[1:])
    topic = f"conversation:{cid}"
    # Half the members start on node A (which dies), half on node B.
    members = [
        Member(user, "d", [a.url, b.url] if n % 2 == 0 else [b.url], topic)
        for n, user in enumerate(users)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(m.run(sends=40, stop=stop)) for m in members]
    # Killed mid-stream: once each member on node A has some sends acknowledged (on a slow
    # machine that can take longer than any fixed pause), with most still to come.
    for _ in range(600):
        if all(len(m.acked) >= 5 for m in members[::2]):
            break
        await asyncio.sleep(0.01)
    assert all(len(m.acked) < 40 for m in members[::2]), "node A was killed too late"
    a.process.send_signal(signal.SIGKILL)
    await a.process.wait()
    for _ in range(400):
        if all(len(m.acked) == 40 for m in members):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)

    acked = sorted(seq for m in members for seq in m.acked.values())
    assert len(acked) == 4 * 40
    assert acked == list(range(1, len(acked) + 1)), "acknowledged seqs are one gap-free order"
    for member in members:
        counts = Counter(member.seen)
        assert [seq for seq, n in counts.items() if n > 1] == [], f"{member.user}: duplicates"
        assert sorted(counts) == acked, f"{member.user} missed {sorted(set(acked) - set(counts))}"
    assert sum(m.reconnects for m in members[::2]) >= 2


async def test_sigterm_drains_with_1012_and_clients_catch_up_elsewhere(cluster: Cluster) -> None:
    a, b = await cluster.start("node-a"), await cluster.start("node-b")
    ada, bob = unique("ada"), unique("bob")
    cid = await _create_group(a, ada, [bob])
    topic = f"conversation:{cid}"
    async with PhoenixClient.connect(a.url, _token(ada, "d")) as on_a:
        await on_a.join(topic)
        a.process.send_signal(signal.SIGTERM)
        code, reason = await asyncio.wait_for(on_a.wait_closed(), 30)
    assert code == 1012, (code, reason)
    assert await asyncio.wait_for(a.process.wait(), 30) == 0
    async with PhoenixClient.connect(b.url, _token(bob, "d")) as on_b:
        await on_b.join(topic)
        await on_b.push(topic, "send_message", {"client_id": "after", "content": "x"})
    async with PhoenixClient.connect(b.url, _token(ada, "d")) as back:
        await back.join(topic, {"last_seq": 0})
        caught_up = await back.next_event(topic, "new_message")
        assert caught_up.payload["message"]["content"] == "x"
    with contextlib.suppress(ProcessLookupError):
        a.process.kill()


async def test_the_presences_of_a_killed_node_disappear_within_30_s(cluster: Cluster) -> None:
    a, b = await cluster.start("node-a"), await cluster.start("node-b")
    ada, bob = unique("ada"), unique("bob")
    cid = await _create_group(a, ada, [bob])
    topic = f"conversation:{cid}"
    async with PhoenixClient.connect(b.url, _token(bob, "web")) as on_b:
        # Entered by hand: this client's node is killed under it, so it is never closed.
        on_a_context = PhoenixClient.connect(a.url, _token(ada, "phone"))
        on_a = await on_a_context.__aenter__()
        await on_a.join(topic)
        await on_b.join(topic)
        state = await on_b.next_event(topic, "presence_state")
        assert ada in state.payload
        a.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while True:
            diff = await on_b.next_event(topic, "presence_diff", timeout=35)
            if ada in diff.payload["leaves"]:
                break
        assert time.monotonic() - killed < 30
        with contextlib.suppress(Exception):
            await on_a_context.__aexit__(None, None, None)
