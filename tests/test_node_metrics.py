"""The node's operational metrics, read from a scrape: actors by kind, supervisor restarts,
store calls, breaker states, broker connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.conversation import Draft
from supervisors import Crashed, Killed, Normal, Shutdown, stop_tree
from tests.gateway.conftest import start_node
from tests.scrape import sample_values, scrape
from whispr.node_metrics import child_kind, restart_reason
from whispr.telemetry import SECONDS_BUCKETS


def test_child_kinds_and_reasons_are_bounded_words() -> None:
    assert child_kind("store") == "store"
    assert child_kind(("conversation", "01J8ZQ")) == "conversation"
    assert child_kind(("connection", 140234)) == "connection"
    assert child_kind(42) == "int"
    assert restart_reason(Crashed(ConnectionError("refused"))) == "ConnectionError"
    assert restart_reason(Killed("test")) == "killed"
    assert restart_reason(Normal()) == "normal"
    assert restart_reason(Shutdown()) == "shutdown"


async def test_a_node_that_carried_traffic_exposes_the_agreed_metrics(tmp_path: Path) -> None:
    running = await start_node({"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
    try:
        messaging = running.node.messaging.get()
        group = await messaging.create_group("ada", "tea", ["bob"])
        await messaging.send("ada", group.id, Draft(client_id="c1", content="hi"))
        async with running.client("ada") as client:
            await client.join(f"conversation:{group.id}")
            samples = await scrape(running.http)
    finally:
        await stop_tree(running.root, deadline=10)

    assert sample_values(samples, "whispr_actors", kind="conversation")[0] >= 1
    assert sample_values(samples, "whispr_actors", kind="connection")[0] >= 1
    assert sample_values(samples, "whispr_broker_connected") == [1.0]
    assert sample_values(samples, "whispr_store_breaker_state")[0] in (0.0, 1.0, 2.0)
    (inserts,) = sample_values(
        samples, "whispr_store_call_seconds_count", operation="insert_messages", outcome="ok"
    )
    assert inserts >= 1
    bounds = sorted(
        float(s.labels["le"])
        for s in samples
        if s.name == "whispr_store_call_seconds_bucket"
        and s.labels.get("operation") == "insert_messages"
        and s.labels.get("outcome") == "ok"
    )
    assert bounds == [*SECONDS_BUCKETS, float("inf")]
    for name in ("whispr_actors", "whispr_store_call_seconds_count"):
        for sample in (s for s in samples if s.name == name):
            assert not {"id", "conversation", "user", "node"} & set(sample.labels)


async def test_a_restarted_service_is_counted_by_supervisor_child_and_reason(
    tmp_path: Path,
) -> None:
    running = await start_node({"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
    labels = {"supervisor": "root", "child_kind": "store", "reason": "killed"}
    try:
        before = sum(
            sample_values(await scrape(running.http), "whispr_supervisor_restarts_total", **labels)
        )
        old_store = running.node.store.get()
        old_gateway = running.node.gateway.get()
        store_ref = running.node.whereis("store")
        assert store_ref is not None
        store_ref.kill("test")
        await store_ref.wait_exit()
        for _ in range(500):  # the gateway restarts last (rest_for_one)
            if running.node.gateway.peek() not in (None, old_gateway):
                break
            await asyncio.sleep(0.01)
        after = sum(
            sample_values(await scrape(running.http), "whispr_supervisor_restarts_total", **labels)
        )
    finally:
        await stop_tree(running.root, deadline=10)
        await old_store.commit.close()
        await old_store.store.close()
    assert after == before + 1
