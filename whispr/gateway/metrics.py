"""The gateway's metrics, defined once (OpenTelemetry; exposed at ``GET /metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.metrics import Counter, Histogram, UpDownCounter

from whispr.telemetry import get_meter

__all__ = ["GatewayMetrics"]


def _meter_counter(name: str, description: str) -> Counter:
    return get_meter("whispr.gateway").create_counter(name, description=description)


@dataclass(frozen=True)
class GatewayMetrics:
    """Connections, joins, messages in and out, push latency, errors."""

    connections: UpDownCounter = field(
        default_factory=lambda: get_meter("whispr.gateway").create_up_down_counter(
            "whispr_gateway_connections", description="WebSocket connections open"
        )
    )
    connects: Counter = field(
        default_factory=lambda: _meter_counter(
            "whispr_gateway_connects", "WebSocket handshakes, by outcome"
        )
    )
    joins: Counter = field(
        default_factory=lambda: _meter_counter("whispr_gateway_joins", "channel joins, by outcome")
    )
    messages_in: Counter = field(
        default_factory=lambda: _meter_counter(
            "whispr_gateway_messages_in", "frames received from clients"
        )
    )
    messages_out: Counter = field(
        default_factory=lambda: _meter_counter(
            "whispr_gateway_messages_out", "frames sent to clients"
        )
    )
    errors: Counter = field(
        default_factory=lambda: _meter_counter(
            "whispr_gateway_errors", "error replies, channel crashes and closes, by reason"
        )
    )
    push_latency: Histogram = field(
        default_factory=lambda: get_meter("whispr.gateway").create_histogram(
            "whispr_gateway_push_seconds",
            unit="s",
            description="time from a client push received to its reply, by event",
        )
    )
