"""A token that expires on an open connection: closed with 1008, no push taken after expiry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt
import pytest

from supervisors import stop_tree
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.client import PhoenixClient, ReplyError


def _expiry(token: str) -> float:
    """The token's ``exp`` claim (whole seconds, so up to a second before now + ttl)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()) + 0.05)


async def test_a_push_after_expiry_is_refused_and_closes_with_1008(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    token = node.token(ada, ttl_s=2)
    async with PhoenixClient.connect(node.url, token, heartbeat_s=3600) as client:
        await client.join(topic)
        reply = await client.push(topic, "send_message", {"client_id": "m1", "content": "in"})
        assert reply["seq"] == 1
        await _sleep_until(_expiry(token))
        # Sooner than any tick: the push itself finds the token expired.
        with pytest.raises((ConnectionError, ReplyError)):
            await client.push(topic, "send_message", {"client_id": "m2", "content": "late"})
        closed = await asyncio.wait_for(client.wait_closed(), 5)
    assert closed == (1008, "token expired")
    history = await messaging.history(ada, cid)
    assert [m.client_id for m in history] == ["m1"]


async def test_a_silent_connection_is_closed_within_one_tick_of_expiry(tmp_path: Path) -> None:
    # A heartbeat timeout of 6 s makes the tick interval 2 s (a third of it).
    running = await start_node(
        {
            "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
            "WHISPR_HEARTBEAT_INTERVAL_S": "2",
            "WHISPR_HEARTBEAT_TIMEOUT_S": "6",
        }
    )
    try:
        token = running.token(unique("ada"), ttl_s=2)
        async with PhoenixClient.connect(running.url, token, heartbeat_s=3600) as client:
            closed = await asyncio.wait_for(client.wait_closed(), 10)
            closed_at = time.time()
        assert closed == (1008, "token expired")
        assert _expiry(token) <= closed_at <= _expiry(token) + 2.0 + 0.5
    finally:
        await stop_tree(running.root, deadline=10)
