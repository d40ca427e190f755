"""The broker's metric: is this node connected to Redis (``whispr_broker_connected``)."""

from __future__ import annotations

import functools

from actors.broker import Broker
from whispr.broker.redis import RedisBroker
from whispr.telemetry import ObservedGauge

__all__ = ["broker_connected"]


def _connected(broker: Broker) -> int:
    # The in-process broker has nothing to lose: it counts as connected, so an alert on 0
    # means a Redis broker that cannot reach Redis.
    return 0 if isinstance(broker, RedisBroker) and not broker.connected else 1


@functools.cache
def broker_connected() -> ObservedGauge[Broker]:
    """The process's gauge of the broker connection: 1 connected, 0 not (the worst of the
    live brokers', one per node)."""
    return ObservedGauge(
        "whispr.broker",
        "whispr_broker_connected",
        "1 when the broker is connected (Redis pub/sub up, or in-process), else 0",
        _connected,
        combine=lambda values: min(values, default=0),
    )
