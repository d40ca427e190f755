"""Calls to the sibling services carry W3C trace context (``traceparent`` metadata)."""

from __future__ import annotations

from opentelemetry import trace

from actors.tracing import TRACER
from tests.siblings.conftest import StandIn
from tests.tracing import recorded
from whispr.siblings import Siblings


async def test_calls_to_a_sibling_carry_traceparent(stand_in: StandIn) -> None:
    spans = recorded()
    siblings = Siblings.from_settings(stand_in.settings())
    await siblings.open()
    try:
        await siblings.users.is_active("ada")
        # Not sampled: the decision travels (W3C flags without "sampled"), so the callee
        # does not start a trace of its own for it.
        assert int(stand_in.users.metadata[-1]["traceparent"].split("-")[3], 16) & 1 == 0

        spans.switch.on = True
        with TRACER.start_as_current_span("push") as span:
            await siblings.users.is_active("bob")
        spans.switch.on = False
    finally:
        await siblings.close()
    sent = stand_in.users.metadata[-1]["traceparent"]
    assert sent.split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    client = [s for s in spans.spans() if s.kind is trace.SpanKind.CLIENT]
    assert len(client) == 1
    assert sent.split("-")[2] == f"{client[0].context.span_id:016x}"
