"""The node's OpenTelemetry traces: a ``TracerProvider`` set up by the standard ``OTEL_*`` names.

What is configured where:

- ``OTEL_TRACES_EXPORTER`` (comma-separated: ``otlp``, ``console``, ``none``) is read here, as
  the SDK leaves it to its auto-configuration, which a node does not run. Unset, it is
  ``none``: a node started without a collector exports nothing and installs no provider, so
  every span is the API's no-op (an operator turns tracing on by naming an exporter). Each
  name is loaded from the ``opentelemetry_traces_exporter`` entry points the exporter
  packages declare; ``otlp`` is ``otlp_proto_grpc``, the one OTLP exporter installed.
- The sampler is the SDK's when ``OTEL_TRACES_SAMPLER`` is set (it reads that and
  ``OTEL_TRACES_SAMPLER_ARG`` itself). Unset, it is ``parentbased_traceidratio`` with
  :data:`DEFAULT_SAMPLE_RATIO`: a sampled trace costs spans on every hop, so tracing every
  message would cost the node a visible share of its CPU (docs/performance.md).
- Everything else is the SDK's own: the OTLP endpoint, headers and timeout
  (``OTEL_EXPORTER_OTLP_*``), the batch processor's queue and delay (``OTEL_BSP_*``), span
  limits, ``OTEL_SDK_DISABLED``, the propagators (``OTEL_PROPAGATORS``, W3C trace context by
  default) used by the gRPC interceptors.
- The resource is the metrics' one (:func:`whispr.telemetry.node_resource`).

A provider is process-wide (OpenTelemetry's global can be set once), so
:func:`configure_tracing` is idempotent; the telemetry service calls it when it starts and
flushes the spans when it stops (:class:`TelemetryService`).

Whispr's own spans are made in ``actors/tracing.py``'s tracer (a push, a join, a conversation's
send, its group commit and publish, a remote delivery). gRPC calls get theirs from
``opentelemetry-instrumentation-grpc``'s interceptors, on the server
(:func:`server_interceptors`) and on the channels to the sibling services
(:func:`client_interceptors`); they carry ``traceparent`` in the call's metadata.
"""

from __future__ import annotations

import asyncio
import os
import threading
from importlib.metadata import entry_points
from typing import Any, Final

import grpc
from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)
from opentelemetry.sdk.environment_variables import OTEL_TRACES_SAMPLER
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from structlog import get_logger

from supervisors import AsyncioActor
from whispr.config import Settings
from whispr.telemetry import node_resource

__all__ = [
    "DEFAULT_SAMPLE_RATIO",
    "TelemetryService",
    "TracingError",
    "check_exporters",
    "client_interceptors",
    "configure_tracing",
    "exporter_names",
    "server_interceptors",
    "tracer_provider",
]

log = get_logger("whispr.tracing")

#: The share of root spans (pushes, joins, gRPC calls) sampled when ``OTEL_TRACES_SAMPLER``
#: is unset: 1 in 100. Parent-based, so a call whose caller sampled it is traced whatever this.
DEFAULT_SAMPLE_RATIO: Final = 0.01

#: ``OTEL_TRACES_EXPORTER`` names that are another's (the specification's ``otlp`` is the OTLP
#: exporter installed: gRPC).
_ALIASES: Final = {"otlp": "otlp_proto_grpc"}
_ENTRY_POINTS: Final = "opentelemetry_traces_exporter"

_lock = threading.Lock()
_provider: TracerProvider | None = None
_configured = False


class TracingError(ValueError):
    """``OTEL_TRACES_EXPORTER`` names an exporter that is not installed."""


def exporter_names(env: dict[str, str] | None = None) -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names, ``none`` left out (unset: none)."""
    value = (env if env is not None else os.environ).get(OTEL_TRACES_EXPORTER, "none")
    names = [name.strip().lower() for name in value.split(",")]
    return [_ALIASES.get(name, name) for name in names if name and name != "none"]


def check_exporters() -> None:
    """Raise :class:`TracingError` if ``OTEL_TRACES_EXPORTER`` names one not installed.

    ``whispr serve`` asks before starting the node, so the mistake is one line, not a crash
    of the telemetry service.
    """
    installed = {ep.name for ep in entry_points(group=_ENTRY_POINTS)}
    for name in exporter_names():
        if name not in installed:
            msg = (
                f"{OTEL_TRACES_EXPORTER}: no trace exporter {name!r} "
                f"(installed: otlp, none, {', '.join(sorted(installed))})"
            )
            raise TracingError(msg)


def _exporter(name: str) -> SpanExporter:
    found = entry_points(group=_ENTRY_POINTS, name=name)
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """A ``TracerProvider`` as ``OTEL_*`` say, not installed; None when no exporter is named.

    Raises :class:`TracingError` for an exporter name that is not installed.
    """
    names = exporter_names()
    if not names:
        return None
    check_exporters()
    exporters = [_exporter(name) for name in names]
    sampler = (
        None  # the SDK's, from OTEL_TRACES_SAMPLER and its argument
        if os.environ.get(OTEL_TRACES_SAMPLER)
        else ParentBasedTraceIdRatio(DEFAULT_SAMPLE_RATIO)
    )
    provider = TracerProvider(sampler=sampler, resource=node_resource(settings))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Install the process's :func:`tracer_provider`, once; None when tracing is off."""
    global _provider, _configured
    with _lock:
        if _configured:
            return _provider
        provider = tracer_provider(settings)
        if provider is not None:
            trace.set_tracer_provider(provider)
            log.info(
                "tracing on",
                exporters=exporter_names(),
                sampler=provider.sampler.get_description(),
            )
        _provider, _configured = provider, True
        return provider


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The gRPC server's interceptors: a span per call, its parent from ``traceparent``.

    Health checks and reflection are left out: probes call every few seconds and would
    fill the traces with calls nobody asks about.
    """
    untraced = filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(
        filter_=filters.negate(untraced)
    )  # type: ignore[no-untyped-call]
    return [interceptor]


def client_interceptors() -> list[Any]:
    """A gRPC channel's interceptors: a span per call, ``traceparent`` in its metadata."""
    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


class TelemetryService(AsyncioActor):
    """The node's first service: installs tracing, and flushes the spans when the node stops.

    First in the root's ``rest_for_one`` order, so it starts before anything makes a span and
    stops after everything else has: its flush exports the spans of the node's last moments
    (a drained connection's, a last commit's) before the process exits.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def on_start(self) -> None:
        configure_tracing(self.settings)

    async def on_stop(self) -> None:
        provider = _provider
        if provider is not None:
            # force_flush blocks while the exporters send: off the event loop.
            await asyncio.get_running_loop().run_in_executor(None, provider.force_flush)
