"""The sibling clients' metrics, defined once (OpenTelemetry; exposed at ``GET /metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.metrics import Counter

from whispr.telemetry import get_meter

__all__ = ["SiblingMetrics"]


def _counter(name: str, description: str) -> Counter:
    return get_meter("whispr.siblings").create_counter(name, description=description)


@dataclass(frozen=True)
class SiblingMetrics:
    """Calls, breaker state changes, fallbacks and push outcomes, by sibling."""

    calls: Counter = field(
        default_factory=lambda: _counter(
            "whispr_sibling_calls", "calls to sibling services, by sibling and outcome"
        )
    )
    breaker_changes: Counter = field(
        default_factory=lambda: _counter(
            "whispr_sibling_breaker_changes",
            "circuit breaker state changes, by sibling and new state",
        )
    )
    fallbacks: Counter = field(
        default_factory=lambda: _counter(
            "whispr_sibling_fallbacks",
            "answers given without the sibling (not configured or unavailable), by sibling",
        )
    )
    pushes: Counter = field(
        default_factory=lambda: _counter(
            "whispr_sibling_pushes",
            "push requests by outcome: sent, retried, failed, dropped, unsent",
        )
    )


_shared: SiblingMetrics | None = None


def sibling_metrics() -> SiblingMetrics:
    """The process's one set of instruments (created on first use)."""
    global _shared
    if _shared is None:
        _shared = SiblingMetrics()
    return _shared
