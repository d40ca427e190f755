"""An in-memory span exporter for the tests, and a switch for sampling.

OpenTelemetry's global ``TracerProvider`` can be set once per process, so the first test that
asks for :func:`recorded` installs one for the whole session: every span goes to one
``InMemorySpanExporter``, and a :class:`Switch` sampler decides, root span by root span, from
what the test says. It is off outside a test that turns it on, so the rest of the suite runs as
a node with tracing on and nothing sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes


class Switch(Sampler):
    """Samples every root span while ``on``, none while off."""

    def __init__(self) -> None:
        self.on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        chosen = ALWAYS_ON if self.on else ALWAYS_OFF
        return chosen.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "TestSwitch"


class Recorded:
    """The spans ended so far, and the sampling switch."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.switch = Switch()

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name.startswith(prefix)]


_recorded: Recorded | None = None


def recorded() -> Recorded:
    """The session's span recorder (installed on first use), emptied, sampling off."""
    global _recorded
    if _recorded is None:
        _recorded = Recorded()
        provider = TracerProvider(sampler=ParentBased(_recorded.switch))
        provider.add_span_processor(SimpleSpanProcessor(_recorded.exporter))
        trace.set_tracer_provider(provider)
    _recorded.exporter.clear()
    _recorded.switch.on = False
    return _recorded
