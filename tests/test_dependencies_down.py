"""Real ``whispr serve`` processes and a Redis of the test's own: a node started while Redis
is down serves and delivers locally, then joins the cluster when Redis comes back; its
metrics pass ``promtool check metrics`` after carrying that traffic."""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from tests.scrape import fetch_metrics, parse_samples, promtool_check_metrics, sample_values
from tests.services import PgSchema, services_required
from whispr.auth import issue_token
from whispr.bench.chaos_services import PrivateRedis
from whispr.bench.nodes import NodeProcess, start_node_process
from whispr.client import PhoenixClient

SECRET = "a-test-secret-that-is-long-enough-for-hs256-tokens"


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), bytes(response.read()).decode()


def _token(user: str, device: str) -> str:
    return issue_token(user, secret=SECRET, device_id=device)


async def _broker_connected(node: NodeProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    base = f"http://127.0.0.1:{node.port}"
    while time.monotonic() < deadline:
        samples = parse_samples(await asyncio.to_thread(fetch_metrics, base))
        if sample_values(samples, "whispr_broker_connected") == [1.0]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{node.name} did not reconnect to Redis within {timeout} s")


async def test_a_node_started_without_redis_serves_then_joins_the_cluster(
    tmp_path: Path, pg_schema: PgSchema
) -> None:
    if shutil.which("redis-server") is None:
        if services_required():
            pytest.fail("redis-server is not installed", pytrace=False)
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)  # its port is chosen; nothing listens there yet
    env = {
        "WHISPR_DATABASE_URL": pg_schema.url,
        "WHISPR_REDIS_URL": redis.url,
        "WHISPR_JWT_SECRET": SECRET,
    }
    nodes: list[NodeProcess] = []
    try:
        first = await start_node_process("first", env)
        nodes.append(first)
        base = f"http://127.0.0.1:{first.port}"
        assert await asyncio.to_thread(_get, base + "/health") == (200, "ok\n")
        assert await asyncio.to_thread(_get, base + "/ready") == (
            200,
            "ready\nstore: ok\nbroker: unavailable\n",
        )

        async with (
            PhoenixClient.connect(first.url, _token("ada", "laptop")) as ada,
            PhoenixClient.connect(first.url, _token("bob", "phone")) as bob,
        ):
            await ada.join("user:ada")
            created = await ada.push(
                "user:ada", "create_conversation", {"kind": "direct", "with_user": "bob"}
            )
            topic = "conversation:" + created["conversation"]["id"]
            await ada.join(topic)
            await bob.join(topic, {"last_seq": 0})
            await ada.push(topic, "send_message", {"client_id": "local-1", "content": "local"})
            event = await bob.next_event(topic, "new_message")
            assert event.payload["message"]["content"] == "local"  # delivered on the node

            redis.start()
            await _broker_connected(first, timeout=30)
            second = await start_node_process("second", env)
            nodes.append(second)
            async with PhoenixClient.connect(second.url, _token("bob", "tablet")) as bob_too:
                await bob_too.join(topic, {"last_seq": 1})
                await ada.push(
                    topic, "send_message", {"client_id": "across-1", "content": "across"}
                )
                event = await bob_too.next_event(topic, "new_message")
                assert event.payload["message"]["content"] == "across"  # through Redis
                await bob_too.push(
                    topic, "send_message", {"client_id": "back-1", "content": "back"}
                )
                while (event := await ada.next_event(topic, "new_message")).payload["message"][
                    "content"
                ] != "back":
                    pass

        text = await asyncio.to_thread(fetch_metrics, base)
        checked = promtool_check_metrics(text)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert await asyncio.to_thread(_get, base + "/ready") == (
            200,
            "ready\nstore: ok\nbroker: ok\n",
        )
    finally:
        for node in nodes:
            await node.stop()
        redis.stop()
