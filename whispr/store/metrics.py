"""The store's metrics: each data call's latency and outcome, and the breaker's state.

Every data call goes through :class:`whispr.store.breaker.BreakerStore`, so that is where
both are recorded. The latency histogram is a ``prometheus_client`` one, in the registry
``/metrics`` renders, for its cost per record (every send's group commit and every join's
reads record one; see :mod:`whispr.telemetry`). Outcomes:

- ``ok``: the store answered;
- ``unavailable``: the database could not be reached, was too slow, or the breaker was open
  (what :func:`whispr.store.breaker.is_outage` counts);
- ``error``: any other exception, a refusal (``not_found``, ``conflict``...) included: the
  store answered, with a no.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final, Literal

from prometheus_client import Histogram

from whispr.telemetry import SECONDS_BUCKETS, ObservedGauge, prometheus_registry

if TYPE_CHECKING:
    from whispr.store.breaker import BreakerStore

__all__ = ["Outcome", "StoreCallLatency", "store_breaker_state"]

Outcome = Literal["ok", "error", "unavailable"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("ok", "error", "unavailable")


@functools.cache
def _histogram() -> Histogram:
    return Histogram(
        "whispr_store_call_seconds",
        "store call durations, by operation and outcome (ok, error, unavailable)",
        ["operation", "outcome"],
        registry=prometheus_registry(),
        buckets=SECONDS_BUCKETS,
    )


class StoreCallLatency:
    """Records store calls; the labelled children are looked up once each."""

    def __init__(self) -> None:
        self._histogram = _histogram()
        self._children: dict[tuple[str, str], Histogram] = {}

    def record(self, operation: str, outcome: Outcome, seconds: float) -> None:
        """One call of ``operation`` (a method of the Store port) that took ``seconds``."""
        key = (operation, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._histogram.labels(operation, outcome)
        child.observe(seconds)


@functools.cache
def store_breaker_state() -> ObservedGauge[BreakerStore]:
    """The process's gauge of the store breaker's state (``whispr_store_breaker_state``):
    0 closed, 1 half-open, 2 open; the worst of the live stores' (one per node)."""
    return ObservedGauge(
        "whispr.store",
        "whispr_store_breaker_state",
        "the store's circuit breaker state: 0 closed, 1 half-open, 2 open",
        lambda store: store.breaker.state_code,
        combine=lambda codes: max(codes, default=0),
    )
