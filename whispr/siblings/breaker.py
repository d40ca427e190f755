"""Circuit breakers with pybreaker, usable around ``await``: one per sibling service.

:class:`Breaker` is the mechanism, told by its owner what counts as a failure and
where to count its state changes; :class:`SiblingBreaker` is it with the siblings'
rule and metric. The store uses the same :class:`Breaker` with its own rule
(:mod:`whispr.store.breaker`), so there is one implementation of the specified breaker.

The specification's numbers are the defaults: 5 consecutive failures open the
breaker for 30 s; then calls go through as trials, and 3 successful trials close
it, while one failed trial opens it again for another 30 s
(``WHISPR_SIBLING_BREAKER_*``). While it is open, calls fail at once without
touching the network, and the caller's fallback applies.

Only the sibling's *failures* count: it is unreachable, too slow (deadline),
overloaded or broken (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
INTERNAL, UNKNOWN). An answer such as NOT_FOUND or INVALID_ARGUMENT is the
sibling working, and a cancelled call says nothing about it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
import pybreaker
import structlog
from opentelemetry.metrics import Counter

from whispr.siblings.metrics import SiblingMetrics
from whispr.telemetry import LabelledGauge

__all__ = [
    "FAILURE_CODES",
    "STATE_CODES",
    "Breaker",
    "BreakerOpen",
    "SiblingBreaker",
    "is_failure",
    "sibling_breaker_states",
]

log = structlog.get_logger("whispr.siblings")

T = TypeVar("T")

#: Status codes that mean the sibling failed (rather than answered).
FAILURE_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

BreakerOpen = pybreaker.CircuitBreakerError

#: A breaker's state as a gauge's value (``whispr_store_breaker_state``,
#: ``whispr_sibling_breaker_state``): the larger, the worse.
STATE_CODES: Final = {"closed": 0, "half-open": 1, "open": 2}


def is_failure(exc: BaseException) -> bool:
    """Whether ``exc`` counts against the sibling (see the module's docstring)."""
    if isinstance(exc, asyncio.CancelledError):
        return False
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in FAILURE_CODES
    return True


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, label: str, name: str, changes: Counter, logger: Any) -> None:
        self.label = label
        self.name = name
        self.changes = changes
        self.logger = logger

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else "none"
        if old == new_state.name:
            return  # calls in flight when it opened failed too: not a change
        self.changes.add(1, {self.label: self.name, "state": new_state.name})
        self.logger.warning(
            f"{self.label} circuit breaker changed",
            **{self.label: self.name},
            old_state=old,
            new_state=new_state.name,
        )


class Breaker:
    """A breaker around awaited calls: :meth:`call` runs a coroutine under it.

    The owner says what counts: ``is_failure(exc)`` is true for an exception that
    shows the dependency failing; any other exception is the dependency answering
    and passes through as it is. Each state change is added to ``changes`` with the
    labels ``{label: name, "state": new_state}`` and logged as a warning.
    """

    def __init__(
        self,
        name: str,
        *,
        is_failure: Callable[[BaseException], bool],
        changes: Counter,
        label: str,
        failures: int = 5,
        open_s: float = 30.0,
        trials: int = 3,
        logger: Any = log,
    ) -> None:
        self.name = name
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=failures,
            reset_timeout=open_s,
            success_threshold=trials,
            exclude=[lambda exc: not is_failure(exc)],
            listeners=[_Listener(label, name, changes, logger)],
            name=name,
        )

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        return str(self._breaker.current_state)

    @property
    def state_code(self) -> int:
        """:attr:`state` as a gauge's value (:data:`STATE_CODES`)."""
        return STATE_CODES[self.state]

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt()`` if the breaker lets it; record how it went.

        Raises:
            BreakerOpen: the breaker is open (no call was made), or this call's
                failure just opened it.
            Exception: whatever ``attempt`` raised.
        """
        # pybreaker's ``calling()`` context is synchronous: it decides before the block and
        # records the outcome after it, which is all an awaited block needs.
        with self._breaker.calling():
            return await attempt()

    def _state_for_tests(self) -> Any:
        return self._breaker.state


class SiblingBreaker(Breaker):
    """One sibling's breaker: the siblings' rule (:func:`is_failure`), counted in
    ``whispr_sibling_breaker_changes`` by ``sibling`` and ``state``."""

    def __init__(
        self,
        sibling: str,
        metrics: SiblingMetrics,
        *,
        failures: int = 5,
        open_s: float = 30.0,
        trials: int = 3,
    ) -> None:
        super().__init__(
            sibling,
            is_failure=is_failure,
            changes=metrics.breaker_changes,
            label="sibling",
            failures=failures,
            open_s=open_s,
            trials=trials,
        )
        self.sibling = sibling
        sibling_breaker_states().watch(self)


@functools.cache
def sibling_breaker_states() -> LabelledGauge[SiblingBreaker]:
    """The process's gauge of each sibling's breaker state (``whispr_sibling_breaker_state``).

    Read from the live breakers when the metrics are scraped; where several breakers of one
    sibling live in the process (nodes in a test), the worst state shows.
    """
    return LabelledGauge(
        "whispr.siblings",
        "whispr_sibling_breaker_state",
        "circuit breaker state by sibling: 0 closed, 1 half-open, 2 open",
        "sibling",
        lambda breaker: {breaker.sibling: breaker.state_code},
        combine=max,
    )
