"""The gateway's metrics, defined once (exposed at ``GET /metrics``).

All are OpenTelemetry instruments but one: the push latency, recorded on every client push,
is a ``prometheus_client`` histogram in the same registry, for its cost per record; the
counters are asynchronous instruments over plain tallies, for their cost per add (see
:mod:`whispr.telemetry`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import Histogram

from whispr.telemetry import SECONDS_BUCKETS, TalliedCounter, prometheus_registry

__all__ = ["PUSH_LATENCY_BUCKETS", "GatewayMetrics", "PushLatency"]

#: Seconds: a typing notice takes well under a millisecond, a send a commit (a few ms).
PUSH_LATENCY_BUCKETS: Final = SECONDS_BUCKETS

_histogram: Histogram | None = None
_histogram_lock = threading.Lock()


def _push_histogram() -> Histogram:
    """The one push latency histogram of the process (a registry takes a name once)."""
    global _histogram
    with _histogram_lock:
        if _histogram is None:
            _histogram = Histogram(
                "whispr_gateway_push_seconds",
                "time from a client push received to its reply, by event",
                ["event"],
                registry=prometheus_registry(),
                buckets=PUSH_LATENCY_BUCKETS,
            )
        return _histogram


class PushLatency:
    """Time from a client push received to its reply, by event."""

    def __init__(self) -> None:
        self._histogram = _push_histogram()
        self._by_event: dict[str, Histogram] = {}

    def record(self, seconds: float, event: str) -> None:
        """One push of ``event`` answered after ``seconds`` (an event name the node knows)."""
        child = self._by_event.get(event)
        if child is None:
            child = self._by_event[event] = self._histogram.labels(event)
        child.observe(seconds)


_tallies: dict[str, TalliedCounter] = {}
_tallies_lock = threading.Lock()


def _tally(name: str, description: str, *, up_down: bool = False) -> TalliedCounter:
    """The process's one counter ``name`` (an instrument name is registered once)."""
    with _tallies_lock:
        counter = _tallies.get(name)
        if counter is None:
            counter = _tallies[name] = TalliedCounter(
                "whispr.gateway", name, description, up_down=up_down
            )
        return counter


@dataclass(frozen=True)
class GatewayMetrics:
    """Connections, joins, messages in and out, push latency, errors.

    Counters are tallied (:class:`~whispr.telemetry.TalliedCounter`): every handshake and
    join adds to several of them, and a mass reconnect is a thousand of each at once. They
    are the process's, shared by every gateway in it, as OpenTelemetry instruments are.
    """

    connections: TalliedCounter = field(
        default_factory=lambda: _tally(
            "whispr_gateway_connections", "WebSocket connections open", up_down=True
        )
    )
    connects: TalliedCounter = field(
        default_factory=lambda: _tally(
            "whispr_gateway_connects", "WebSocket handshakes, by outcome"
        )
    )
    joins: TalliedCounter = field(
        default_factory=lambda: _tally("whispr_gateway_joins", "channel joins, by outcome")
    )
    messages_in: TalliedCounter = field(
        default_factory=lambda: _tally("whispr_gateway_messages_in", "frames received from clients")
    )
    messages_out: TalliedCounter = field(
        default_factory=lambda: _tally("whispr_gateway_messages_out", "frames sent to clients")
    )
    errors: TalliedCounter = field(
        default_factory=lambda: _tally(
            "whispr_gateway_errors", "error replies, channel crashes and closes, by reason"
        )
    )
    push_latency: PushLatency = field(default_factory=PushLatency)
