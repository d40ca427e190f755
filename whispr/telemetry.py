"""Logs and metrics for a node: structlog for logs, OpenTelemetry for metrics.

Logs
    :func:`configure_logging` sends everything through one pipeline: the
    project's structlog loggers *and* the standard library's ``logging`` (the
    ``supervisors`` library, asyncio, websockets, asyncpg, grpc...) end in the
    same handler and the same renderer, via structlog's
    :class:`~structlog.stdlib.ProcessorFormatter`. So a crash report from a
    supervisor and an event from a conversation actor look alike and carry
    the same fields: ISO-8601 UTC ``timestamp``, ``level``, ``logger``,
    ``event``. In production (``log_format = "json"``) each record is one JSON
    object per line on stderr, for a collector to parse; in development
    (``"console"``) it is coloured columns for a person. stderr, not stdout,
    so a command's own output (``whispr version``) stays clean.

    Level filtering is done by the standard library's logger levels (set on
    the root logger), so it applies equally to both kinds of logger and can
    be changed at run time.

Metrics
    :func:`configure_metrics` installs an OpenTelemetry ``MeterProvider``
    whose reader is ``opentelemetry-exporter-prometheus``'s
    ``PrometheusMetricReader``: the code records through the vendor-neutral
    OpenTelemetry API (``get_meter(...).create_counter(...)``) and Prometheus
    scrapes ``/metrics``, rendered by :func:`metrics_exposition`. The reader
    is bound to a :class:`prometheus_client.CollectorRegistry` of this module,
    not the process-global one, so that the exposition holds exactly the
    node's metrics (plus process and GC metrics, added on purpose), and a
    library registering into the global registry cannot break it.

    One instrument is recorded with ``prometheus_client`` directly, into the
    same registry: the push latency histogram, which every client push
    records. The OpenTelemetry SDK spends about 4.4 µs per ``record`` (a
    measurement object, attribute hashing, a lock), a client's labelled
    ``prometheus_client`` histogram 0.5 µs: at the gateway's rates that
    difference was several percent of the node's CPU. Use
    :func:`prometheus_registry` for such an instrument, and only on a path
    measured to need it.

    Counters on a hot path are :class:`TalliedCounter`: still OpenTelemetry
    instruments, but asynchronous ones. The code adds to a plain dict (0.4 µs)
    and OpenTelemetry reads the totals when it collects, instead of
    aggregating every ``add`` (7 to 15 µs each with attributes). A node
    spent some 50 µs of each reconnecting client's join in such adds.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Generic, TextIO, TypeVar

import structlog
from opentelemetry import metrics as otel_metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from structlog.typing import EventDict, Processor

from whispr import __version__
from whispr.config import Settings

__all__ = [
    "METRICS_CONTENT_TYPE",
    "SECONDS_BUCKETS",
    "LabelledGauge",
    "ObservedGauge",
    "configure_logging",
    "configure_metrics",
    "get_meter",
    "metrics_exposition",
    "node_resource",
    "prometheus_registry",
]

#: The ``Content-Type`` of :func:`metrics_exposition`'s bytes (Prometheus text 0.0.4).
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_METER_NAME: Final = "whispr"

#: The bucket bounds of every latency histogram of the node, in seconds (the unit every
#: duration metric is exported in): from half a millisecond (a typing notice, a cached
#: read) to 10 s (a deadline). OpenTelemetry's default bounds (0, 5, 10, ... 10000) are
#: meant for milliseconds: on a seconds histogram every call lands in the first bucket.
SECONDS_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class _WhisprHandler(logging.StreamHandler[TextIO]):
    """The root handler installed by :func:`configure_logging`.

    A class of its own so that reconfiguring replaces exactly this handler
    and leaves alone any other (pytest's capture handlers, for instance).
    """


def _shared_processors() -> list[Processor]:
    """Processors run for every record, structlog's or the standard library's."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


_LEADING_KEYS: Final = ("timestamp", "level", "logger", "event")


def _leading_keys_first(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level, logger and event first: JSON lines scan better so."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _renderer(log_format: str, stream: TextIO) -> list[Processor]:
    """The last processors: turn the event dict into one line of text."""
    if log_format == "json":
        return [
            # Tracebacks as structured data: one JSON object per record even
            # when it carries an exception. Without frame locals: they would
            # copy tokens, passwords and message contents into the logs.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            _leading_keys_first,
            structlog.processors.JSONRenderer(serializer=json.dumps, default=str),
        ]
    colors = bool(getattr(stream, "isatty", lambda: False)())
    return [structlog.dev.ConsoleRenderer(colors=colors)]


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route structlog and standard-library logging through one renderer.

    Safe to call again (tests do, and so may a reload): it replaces the
    handler it installed before. After configuring, it logs
    :meth:`Settings.startup_warnings` (a missing JWT secret, say) at WARNING,
    so they are the first thing an operator sees.

    Args:
        settings: reads ``log_format`` and ``log_level``.
        stream: where lines go; ``sys.stderr`` when None.
    """
    target = sys.stderr if stream is None else stream
    shared = _shared_processors()

    structlog.configure(
        processors=[
            # Drop below-level events before doing any work on them.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        # The chain above never changes between calls (the renderer lives in
        # the handler's formatter), so caching bound loggers is safe and
        # saves a lookup per log call on the hot path.
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(settings.log_format, target),
        ],
    )
    handler = _WhisprHandler(target)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _WhisprHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Route warnings.warn(...) (deprecations in libraries) through logging too.
    logging.captureWarnings(True)

    log = structlog.get_logger("whispr.config")
    for warning in settings.startup_warnings():
        log.warning(warning)


def node_resource(settings: Settings | None) -> Resource:
    """What the node's metrics and traces say they come from: one rule for both.

    ``service.name`` is ``whispr`` and ``service.instance.id`` the node's name
    (``WHISPR_NODE_NAME``, the pod's name on Kubernetes) unless the operator says otherwise
    with ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES``, which win, as OpenTelemetry
    specifies. Without ``settings`` (metrics recorded before a node's settings are known, in
    tests), the instance id is the SDK's default, a random one.
    """
    attributes: dict[str, str] = {"service.name": "whispr", "service.version": __version__}
    if settings is not None:
        attributes["service.instance.id"] = settings.node_name
    detected = OTELResourceDetector().detect().attributes  # OTEL_RESOURCE_ATTRIBUTES, _SERVICE_NAME
    return Resource.create({**attributes, **detected})


_metrics_lock = threading.Lock()
_registry: CollectorRegistry | None = None
_provider: MeterProvider | None = None


def configure_metrics(settings: Settings | None = None) -> MeterProvider:
    """Install the node's OpenTelemetry ``MeterProvider``, exported for Prometheus.

    Idempotent: the first call builds the provider, its Prometheus reader
    and registry, and makes it OpenTelemetry's global provider (which can be
    set only once per process); later calls return the same provider.

    Args:
        settings: when given, its ``node_name`` becomes the
            ``service.instance.id`` resource attribute (the ``target_info``
            metric), which tells the nodes of a cluster apart (see
            :func:`node_resource`). ``whispr serve`` calls it with the settings
            before the node's modules make their instruments.
    """
    global _registry, _provider
    with _metrics_lock:
        if _provider is not None:
            return _provider
        registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        reader = PrometheusMetricReader(registry=registry)
        provider = MeterProvider(metric_readers=[reader], resource=node_resource(settings))
        otel_metrics.set_meter_provider(provider)
        _registry, _provider = registry, provider
        return provider


def get_meter(name: str = _METER_NAME) -> otel_metrics.Meter:
    """A meter of the node's provider (configuring metrics first if needed).

    Prefer this to ``opentelemetry.metrics.get_meter``: it cannot pick up a
    no-op provider because of import order.
    """
    return configure_metrics().get_meter(name, __version__)


def prometheus_registry() -> CollectorRegistry:
    """The registry ``GET /metrics`` renders, for the few instruments recorded without
    OpenTelemetry (see the module's docstring)."""
    configure_metrics()
    assert _registry is not None  # set by configure_metrics
    return _registry


def metrics_exposition() -> bytes:
    """The node's metrics in the Prometheus text format, for ``GET /metrics``.

    Serve with ``Content-Type`` :data:`METRICS_CONTENT_TYPE`. Collecting runs
    the OpenTelemetry reader synchronously: call it off the hot path (a
    scrape every 15 s or so is the expected rate).
    """
    configure_metrics()
    assert _registry is not None  # set by configure_metrics
    return generate_latest(_registry)


class TalliedCounter:
    """A counter for hot paths: :meth:`add` tallies in a dict, OpenTelemetry reads the totals.

    It is an observable (asynchronous) OpenTelemetry instrument, exported like a synchronous
    one of the same kind and name (``<name>_total`` for a counter, a gauge for an up-down
    counter). Its adds cost what a dict update does; its callback, run when the metrics are
    collected (a scrape), reports one cumulative total per attribute set. The event loop's
    thread adds and collects, so no lock is taken.

    An instrument name is registered once per process (OpenTelemetry returns the first
    instrument for a second registration, with the first one's callback), so create each one
    once, at module level or behind a lock, and share it.
    """

    def __init__(
        self, meter_name: str, name: str, description: str, *, up_down: bool = False
    ) -> None:
        # A gauge reads 0 before anything is added, rather than being absent.
        self._totals: dict[tuple[tuple[str, str], ...], int] = {(): 0} if up_down else {}
        meter = get_meter(meter_name)
        create = (
            meter.create_observable_up_down_counter if up_down else meter.create_observable_counter
        )
        create(name, callbacks=[self._observe], description=description)

    def add(self, amount: int, attributes: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` (negative only for an up-down counter) to ``attributes``' total."""
        key = tuple(attributes.items()) if attributes else ()
        totals = self._totals
        totals[key] = totals.get(key, 0) + amount

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        # One observation per attribute set, whatever order the callers wrote its keys in.
        merged: dict[frozenset[tuple[str, str]], int] = {}
        for key, total in list(self._totals.items()):
            attributes = frozenset(key)
            merged[attributes] = merged.get(attributes, 0) + total
        return [Observation(total, dict(attributes)) for attributes, total in merged.items()]


_Watched = TypeVar("_Watched")


class _Watching(Generic[_Watched]):
    """The live objects a gauge reads, held weakly so that a stopped node's drop out."""

    def __init__(self) -> None:
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, obj: _Watched) -> None:
        """Count ``obj`` from now on, for as long as it lives."""
        self._watched.add(obj)

    def unwatch(self, obj: _Watched) -> None:
        """Stop counting ``obj`` (a service closed it but something may still hold it)."""
        self._watched.discard(obj)

    def _live(self) -> list[_Watched]:
        return list(self._watched)


class ObservedGauge(_Watching[_Watched]):
    """A gauge read from live objects when the metrics are collected, never written to.

    For a count some object already keeps (a registry's live actors, say): counting it again
    at every start and stop would be a second bookkeeping that can drift from the first. The
    value is ``measure(obj)`` over the objects :meth:`watch` was given and that are still
    alive, combined by ``combine`` (summed by default; a state such as a breaker's takes the
    worst, ``max``). Exported as an OpenTelemetry observable up-down counter (a Prometheus
    gauge). Like :class:`TalliedCounter`, create each one once per process and share it.
    """

    def __init__(
        self,
        meter_name: str,
        name: str,
        description: str,
        measure: Callable[[_Watched], int],
        *,
        combine: Callable[[list[int]], int] = sum,
    ) -> None:
        super().__init__()
        self._measure = measure
        self._combine = combine
        get_meter(meter_name).create_observable_up_down_counter(
            name, callbacks=[self._observe], description=description
        )

    def value(self) -> int:
        """The current value: ``measure`` combined over the live watched objects."""
        return self._combine([self._measure(obj) for obj in self._live()])

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.value())]


class LabelledGauge(_Watching[_Watched]):
    """An :class:`ObservedGauge` with one label: ``measure(obj)`` maps label values to counts.

    Each watched object gives a count per value of ``label`` (a node: its conversation and
    connection actors; a breaker: its sibling's state); values given by several objects are
    combined by ``combine``. The label's values must be few and fixed (kinds, sibling names),
    never ids.
    """

    def __init__(
        self,
        meter_name: str,
        name: str,
        description: str,
        label: str,
        measure: Callable[[_Watched], Mapping[str, int]],
        *,
        combine: Callable[[list[int]], int] = sum,
    ) -> None:
        super().__init__()
        self._label = label
        self._measure = measure
        self._combine = combine
        get_meter(meter_name).create_observable_up_down_counter(
            name, callbacks=[self._observe], description=description
        )

    def values(self) -> dict[str, int]:
        """The current value of each label value seen on a live watched object."""
        seen: dict[str, list[int]] = {}
        for obj in self._live():
            for key, count in self._measure(obj).items():
                seen.setdefault(key, []).append(count)
        return {key: self._combine(counts) for key, counts in seen.items()}

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {self._label: key}) for key, count in self.values().items()]
