"""What ``GET /ready`` (and the gRPC health service) answer, and why.

A node is **ready** when its listeners are up and it is not draining. The state of the
store and the broker is *reported* (in the body of ``/ready``, and as
``whispr_store_breaker_state`` and ``whispr_broker_connected``) but does not make the node
unready.

Why: PostgreSQL and Redis are shared by every node. When readiness followed them, a 10 s
outage of either made every pod unready at once and a Kubernetes Service was left with no
endpoint at all, although each node kept serving what it could (connections, local
delivery, catch-up from the store during a Redis outage; clear ``unavailable`` errors during
a PostgreSQL one). Taking every node out of the balancer helps no one: clients get
connection errors instead of those answers, and reconnect all together when the dependency
returns. Readiness is for what differs between pods (this one is starting or draining);
shared dependencies are watched by alerts on the metrics.

A dependency check that does not answer within :data:`CHECK_TIMEOUT_S` counts as
unavailable, so a silent database cannot make the probe itself time out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Final

__all__ = ["CHECK_TIMEOUT_S", "Check", "dependency_states", "ready_answer"]

#: Seconds a dependency's ping may take before it counts as unavailable.
CHECK_TIMEOUT_S: Final = 1.0

#: Whether one dependency answers (``store.ping``, ``broker.ping``).
Check = Callable[[], Awaitable[bool]]


async def _state(check: Check) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
    except Exception:
        return False


async def dependency_states(checks: Mapping[str, Check]) -> dict[str, bool]:
    """Each dependency's state, checked concurrently: True when it answered in time."""
    names = list(checks)
    states = await asyncio.gather(*(_state(checks[name]) for name in names))
    return dict(zip(names, states, strict=True))


def ready_answer(draining: bool, dependencies: Mapping[str, bool]) -> tuple[HTTPStatus, bytes]:
    """The status and body of ``GET /ready``: 200 ``ready`` unless draining (503
    ``draining``), then one line per dependency (``store: ok``, ``broker: unavailable``)."""
    status = HTTPStatus.SERVICE_UNAVAILABLE if draining else HTTPStatus.OK
    lines = ["draining" if draining else "ready"]
    lines += [f"{name}: {'ok' if up else 'unavailable'}" for name, up in dependencies.items()]
    return status, ("\n".join(lines) + "\n").encode()
