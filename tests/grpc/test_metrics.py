"""gRPC call durations are exported in seconds with seconds buckets, as a scrape shows."""

from __future__ import annotations

from typing import Any

from tests.grpc.conftest import GrpcNode
from tests.scrape import sample_values, scrape
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.telemetry import SECONDS_BUCKETS


async def test_grpc_call_seconds_has_seconds_buckets(grpc_node: GrpcNode, stub: Any) -> None:
    await stub.CreateConversation(
        pb.CreateConversationRequest(
            kind=pb.CONVERSATION_KIND_GROUP, creator_id="ada", title="tea", member_ids=["bob"]
        ),
        metadata=GrpcNode.auth(),
    )

    samples = await scrape(grpc_node.running.http)

    buckets = [
        s
        for s in samples
        if s.name == "whispr_grpc_call_seconds_bucket"
        and s.labels.get("method") == "CreateConversation"
    ]
    bounds = sorted(float(s.labels["le"]) for s in buckets)
    assert bounds == [*SECONDS_BUCKETS, float("inf")]
    (count,) = sample_values(samples, "whispr_grpc_call_seconds_count", method="CreateConversation")
    assert count >= 1
    # A local call takes well under 10 s, so every call is in the 10 s bucket; with the
    # millisecond bounds OpenTelemetry defaults to, every call was in the first one (<= 0).
    (within_10s,) = [s.value for s in buckets if float(s.labels["le"]) == 10.0]
    assert within_10s == count
