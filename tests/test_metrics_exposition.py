"""A live scrape of a ``whispr serve`` process that carried WebSocket and gRPC traffic passes
``promtool check metrics`` and holds the metrics the dashboards and alerts use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from tests.scrape import fetch_metrics, parse_samples, promtool_check_metrics
from whispr.auth import issue_token
from whispr.bench.nodes import free_port, start_node_process
from whispr.client import PhoenixClient
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

SECRET = "a-test-secret-that-is-long-enough-for-hs256-tokens"

#: The names agreed with the dashboards and alerts (docs/operations.md, "Metrics").
AGREED = {
    "whispr_gateway_connections",
    "whispr_gateway_connects_total",
    "whispr_gateway_joins_total",
    "whispr_gateway_messages_in_total",
    "whispr_gateway_messages_out_total",
    "whispr_gateway_push_seconds_bucket",
    "whispr_grpc_calls_total",
    "whispr_grpc_call_seconds_bucket",
    "whispr_conversation_actors",
    "whispr_actors",
    "whispr_store_breaker_state",
    "whispr_store_call_seconds_bucket",
    "whispr_broker_connected",
    "whispr_sibling_breaker_state",
}


async def test_promtool_passes_a_scrape_of_a_node_that_carried_traffic(tmp_path: Path) -> None:
    grpc_port = free_port()
    node = await start_node_process(
        "scraped",
        {
            "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
            "WHISPR_JWT_SECRET": SECRET,
            "WHISPR_GRPC_PORT": str(grpc_port),
            "WHISPR_HTTP_PORT": str(free_port()),
            "WHISPR_GRPC_TOKENS": "ops=ops-token-0123456789",
        },
    )
    try:
        ada = issue_token("ada", secret=SECRET, device_id="laptop")
        bob = issue_token("bob", secret=SECRET, device_id="phone")
        async with (
            PhoenixClient.connect(node.url, ada) as a,
            PhoenixClient.connect(node.url, bob) as b,
        ):
            await a.join("user:ada")
            created = await a.push(
                "user:ada", "create_conversation", {"kind": "direct", "with_user": "bob"}
            )
            topic = "conversation:" + created["conversation"]["id"]
            await a.join(topic)
            await b.join(topic, {"last_seq": 0})
            await a.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
            await b.next_event(topic, "new_message")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            await pb_grpc.MessagingServiceStub(channel).CreateConversation(
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_GROUP, creator_id="ada", member_ids=["bob"]
                ),
                metadata=(("authorization", "Bearer ops-token-0123456789"),),
            )
        text = await asyncio.to_thread(fetch_metrics, f"http://127.0.0.1:{node.port}")
    finally:
        assert await node.stop() == 0

    checked = promtool_check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = {sample.name for sample in parse_samples(text)}
    assert names >= AGREED, AGREED - names


def test_promtool_is_a_check_that_can_fail() -> None:
    checked = promtool_check_metrics("# HELP foo a thing\n# TYPE foo counter\nfoo 1\n")
    assert checked.returncode != 0
    assert "_total" in checked.stdout + checked.stderr
