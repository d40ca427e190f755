"""The HTTP API's metrics: requests by route and status, and their durations.

An ASGI middleware of the app, so it sees each request after routing (its route template,
not the raw path, labels the series: one series per operation, whatever the ids) and the
status actually sent, refusals included. Exported with the node's other metrics at the
gateway's ``/metrics``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.metrics import Counter, Histogram

from whispr.telemetry import SECONDS_BUCKETS, get_meter

__all__ = ["HttpMetrics", "metrics_middleware"]


@dataclass(frozen=True)
class HttpMetrics:
    """Requests by method, route and status, and their durations by method and route."""

    requests: Counter = field(
        default_factory=lambda: get_meter("whispr.http").create_counter(
            "whispr_http_requests",
            description="HTTP API requests served, by method, route and status",
        )
    )
    duration: Histogram = field(
        default_factory=lambda: get_meter("whispr.http").create_histogram(
            "whispr_http_request_seconds",
            unit="s",
            description="HTTP API request durations, by method and route",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
    )


_METRICS: HttpMetrics | None = None


def _metrics() -> HttpMetrics:
    """The process's instruments (one per name and process, as the other services')."""
    global _METRICS
    if _METRICS is None:
        _METRICS = HttpMetrics()
    return _METRICS


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """``app`` counting and timing each HTTP request it serves."""
    metrics = _metrics()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            attributes: dict[str, Any] = {
                "method": scope.get("method", ""),
                "route": scope.get("path_template", "unmatched"),
            }
            metrics.duration.record(time.perf_counter() - started, attributes)
            metrics.requests.add(1, {**attributes, "status": status})

    return middleware
