"""Trace context on a message's path: what a call carries into an actor, and across nodes.

Spans go through the OpenTelemetry API, which is a no-op until the node installs a
``TracerProvider`` (``whispr/tracing.py``): with tracing off, a span costs a call that returns
a non-recording span. With tracing on, most pushes are not sampled; the rule here is that an
unsampled message pays for nothing beyond that decision: no context travels with it, no span
is made after it, no bytes are added to its broker event.

Context is passed explicitly, never picked up implicitly on the other side of a hop:

- into an actor, in the :class:`~actors.calls.Call` that asks it (``Call.trace``), since the
  actor runs the call in its own context (on the loop or, for a thread actor, another thread);
- across nodes, as a W3C ``traceparent`` at the end of the broker event
  (:func:`actors.events.encode_event`), read back by :func:`parent_of`.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["TRACER", "parent_of", "sampled_context", "span_context", "traceparent"]

#: The tracer of every span Whispr makes itself (a proxy until a provider is installed).
TRACER: Final = trace.get_tracer("whispr")

_W3C: Final = TraceContextTextMapPropagator()
_TRACEPARENT: Final = "traceparent"


def sampled_context() -> Context | None:
    """The current context when its span is sampled, else None: what a call carries."""
    current = otel_context.get_current()
    if trace.get_current_span(current).get_span_context().trace_flags.sampled:
        return current
    return None


def span_context(span: Span) -> Context:
    """A context whose current span is ``span``: the parent of the spans made under it."""
    return trace.set_span_in_context(span)


def traceparent(span: Span) -> str:
    """``span`` as a W3C ``traceparent`` value, for a hop that carries text."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, span_context(span))
    return carrier.get(_TRACEPARENT, "")


def parent_of(value: str) -> Context:
    """The context a W3C ``traceparent`` value names (an empty one if it is not valid)."""
    return _W3C.extract({_TRACEPARENT: value})
