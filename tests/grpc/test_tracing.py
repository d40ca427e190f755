"""A gRPC call that carries W3C trace context is traced under its caller's span."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.propagate import inject

from actors.tracing import TRACER
from tests.grpc.conftest import GrpcNode
from tests.tracing import recorded
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc


async def test_a_call_with_traceparent_is_traced_under_the_callers_span(
    grpc_node: GrpcNode, stub: Any
) -> None:
    spans = recorded()
    created = await stub.CreateConversation(
        pb.CreateConversationRequest(
            kind=pb.CONVERSATION_KIND_GROUP, creator_id="ada", title="t", member_ids=["bob"]
        ),
        metadata=grpc_node.auth(),
    )
    assert spans.spans() == []  # nothing sampled: no span at all

    spans.switch.on = True
    with TRACER.start_as_current_span("caller") as caller:
        carrier: dict[str, str] = {}
        inject(carrier)  # what a traced sibling's client interceptor sends
    spans.switch.on = False
    assert "traceparent" in carrier
    await stub.SendSystemMessage(
        pb.SendSystemMessageRequest(
            conversation_id=created.conversation.id, client_id="deploy-1", event="deployed"
        ),
        metadata=(*grpc_node.auth(), *carrier.items()),
    )

    trace_id = caller.get_span_context().trace_id
    server = [s for s in spans.spans() if s.kind is trace.SpanKind.SERVER]
    assert [s.name for s in server] == ["/whispr.messaging.v1.MessagingService/SendSystemMessage"]
    assert server[0].parent is not None
    assert server[0].parent.span_id == caller.get_span_context().span_id
    sends = spans.named("conversation send")
    assert len(sends) == 1
    assert sends[0].context.trace_id == trace_id
    assert sends[0].parent is not None
    assert sends[0].parent.span_id == server[0].context.span_id


async def test_health_checks_are_not_traced(grpc_node: GrpcNode) -> None:
    spans = recorded()
    spans.switch.on = True
    async with grpc_node.channel() as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        stub = pb_grpc.MessagingServiceStub(channel)
        await stub.GetUnreadCounts(
            pb.GetUnreadCountsRequest(user_id="ada"), metadata=grpc_node.auth()
        )
    spans.switch.on = False
    assert [s.name for s in spans.spans() if s.kind is trace.SpanKind.SERVER] == [
        "/whispr.messaging.v1.MessagingService/GetUnreadCounts"
    ]
