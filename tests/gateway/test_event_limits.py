"""Per-event rate limits over real sockets: each event over its budget is refused with
``rate_limited`` and ``retry_after``, and writes nothing; budgets are held across nodes.

Runs on both stores (SQLite with in-memory counters, PostgreSQL with Redis counters), and
across two nodes sharing PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import EACH_STORE, RunningNode, node_on_store, start_node, unique
from whispr.client import ReplyError

LIMIT = 3
LIMITS_ENV = {
    "WHISPR_RATE_LIMIT_PER_MINUTE": str(LIMIT),
    "WHISPR_RATE_LIMIT_EDIT_PER_MINUTE": str(LIMIT),
    "WHISPR_RATE_LIMIT_REACT_PER_MINUTE": str(LIMIT),
    "WHISPR_RATE_LIMIT_TYPING_PER_MINUTE": str(LIMIT),
    "WHISPR_RATE_LIMIT_JOIN_PER_MINUTE": str(LIMIT),
    "WHISPR_RATE_LIMIT_CREATE_CONVERSATION_PER_MINUTE": str(LIMIT),
    # The suspicious-activity patterns stay out of the way of these tests.
    "WHISPR_ABUSE_REFUSALS": "1000",
    "WHISPR_ABUSE_DUPLICATES": "1000",
}


@pytest.fixture(params=EACH_STORE)
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A node whose every limit is 3 per minute."""
    async with node_on_store(request, tmp_path, LIMITS_ENV) as running:
        yield running


def _assert_rate_limited(error: ReplyError, event: str) -> None:
    response = error.response
    assert response["reason"] == "rate_limited"
    assert response["event"] == event
    assert response["limit"] == LIMIT
    assert 0 < response["retry_after"] <= 60


async def _over_the_limit(push: Any, event: str, attempts: int = LIMIT + 2) -> int:
    """Push ``attempts`` times (``push(i)``); how many were accepted, the rest checked as
    refused by the ``event`` limit."""
    accepted = 0
    for i in range(attempts):
        try:
            await push(i)
        except ReplyError as exc:
            _assert_rate_limited(exc, event)
        else:
            accepted += 1
    return accepted


async def _group(node: RunningNode, owner: str, members: list[str]) -> str:
    messaging = node.node.messaging.get()
    return (await messaging.create_group(owner, "t", members)).id


async def test_sends_over_the_limit_are_refused_and_not_stored(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, [bob])
    topic = f"conversation:{cid}"
    async with node.client(ada) as client:
        await client.join(topic)

        async def send(i: int) -> None:
            await client.push(topic, "send_message", {"client_id": f"m{i}", "content": f"{i}"})

        assert await _over_the_limit(send, "send") == LIMIT
    history = await node.node.messaging.get().history(ada, cid)
    assert [m.client_id for m in history] == ["m0", "m1", "m2"]


async def test_edits_and_reactions_over_their_limits_change_nothing(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, [bob])
    topic = f"conversation:{cid}"
    async with node.client(ada) as client:
        await client.join(topic)
        await client.push(topic, "send_message", {"client_id": "m", "content": "v"})

        async def edit(i: int) -> None:
            await client.push(topic, "edit_message", {"seq": 1, "content": f"v{i}"})

        async def react(i: int) -> None:
            await client.push(topic, "react", {"seq": 1, "emoji": ["👍", "🎉", "😀", "🔥", "❤️"][i]})

        assert await _over_the_limit(edit, "edit") == LIMIT
        assert await _over_the_limit(react, "react") == LIMIT
    [message] = await node.node.messaging.get().history(ada, cid)
    assert message.content == f"v{LIMIT - 1}"
    assert sorted(message.reactions) == sorted(["👍", "🎉", "😀"])


async def test_typing_over_the_limit_is_not_broadcast(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, [bob])
    topic = f"conversation:{cid}"
    async with node.client(ada) as typer, node.client(bob) as watcher:
        await watcher.join(topic)
        await typer.join(topic)

        async def typing(_i: int) -> None:
            await typer.push(topic, "typing_start", {})

        assert await _over_the_limit(typing, "typing") == LIMIT
        # A message sent after the typing events arrives after every broadcast of them.
        await typer.push(topic, "send_message", {"client_id": "after", "content": "x"})
        seen = []
        while (event := await watcher.next_event(topic)).event != "new_message":
            seen.append(event.event)
    assert seen.count("user_typing") == LIMIT


async def test_joins_over_the_limit_are_refused(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cids = [await _group(node, ada, [bob]) for _ in range(LIMIT + 2)]
    async with node.client(ada) as client:

        async def join(i: int) -> None:
            await client.join(f"conversation:{cids[i]}")

        assert await _over_the_limit(join, "join") == LIMIT
        # A refused join left nothing joined: a push to it is unmatched.
        with pytest.raises(ReplyError) as refused:
            await client.push(f"conversation:{cids[-1]}", "history", {})
        assert refused.value.reason == "unmatched topic"


async def test_creations_over_the_limit_create_nothing(node: RunningNode) -> None:
    ada = unique("ada")
    async with node.client(ada) as client:
        await client.join(f"user:{ada}")

        async def create(i: int) -> None:
            payload = {"kind": "group", "title": f"g{i}", "members": [unique("m")]}
            await client.push(f"user:{ada}", "create_conversation", payload)

        assert await _over_the_limit(create, "create_conversation") == LIMIT
    assert len(await node.node.messaging.get().list_conversations(ada)) == LIMIT


@pytest.fixture
async def two_nodes(postgres_url: str, redis_url: str) -> AsyncIterator[list[RunningNode]]:
    """Two nodes of one cluster (one PostgreSQL schema, one Redis prefix), limits of 3."""
    async with services.private_schema(postgres_url) as schema:
        env = {
            **LIMITS_ENV,
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("pair"),
        }
        nodes = [await start_node({**env, "WHISPR_NODE_NAME": unique(name)}) for name in ("a", "b")]
        try:
            yield nodes
        finally:
            for running in nodes:
                await stop_tree(running.root, deadline=10)


async def test_a_budget_is_shared_by_a_users_devices_on_two_nodes(
    two_nodes: list[RunningNode],
) -> None:
    a, b = two_nodes
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(a, ada, [bob])
    topic = f"conversation:{cid}"
    async with a.client(ada, "phone") as on_a, b.client(ada, "laptop") as on_b:
        await on_a.join(topic)
        await on_b.join(topic)
        outcomes = await asyncio.gather(
            *(
                (on_a if i % 2 else on_b).push(
                    topic, "send_message", {"client_id": f"m{i}", "content": "x"}
                )
                for i in range(LIMIT * 2)
            ),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, ReplyError)]
        for error in refused:
            _assert_rate_limited(error, "send")
        assert len(refused) == LIMIT
    history = await b.node.messaging.get().history(ada, cid)
    assert len(history) == LIMIT
