"""One sibling service's client: channel, credentials, deadline, breaker, metrics.

The specific clients (:mod:`~whispr.siblings.user`, ...) say what to ask and
what to do when the answer does not come; this says how a call is made. A call
that does not get an answer (the sibling is not configured, unreachable, too
slow, failing, or its breaker is open) raises :class:`SiblingUnavailable`, and
the caller applies its documented fallback. An answer that is an error status
(NOT_FOUND...) is raised as the ``grpc.aio.AioRpcError`` it is.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from whispr.config import Settings
from whispr.siblings.breaker import BreakerOpen, SiblingBreaker, is_failure
from whispr.siblings.channel import open_channel
from whispr.siblings.metrics import SiblingMetrics

__all__ = ["SiblingClient", "SiblingUnavailable"]

log = structlog.get_logger("whispr.siblings")


class SiblingUnavailable(Exception):
    """The sibling gave no answer; the fallback applies."""


class SiblingClient:
    """Calls to one sibling service (``service`` is its full gRPC name)."""

    def __init__(
        self,
        sibling: str,
        target: str | None,
        service: str,
        stub_class: Any,
        settings: Settings,
        metrics: SiblingMetrics,
    ) -> None:
        self.sibling = sibling
        self.target = target
        self.service = service
        self.metrics = metrics
        self.deadline_s = settings.sibling_deadline_s
        self.breaker = SiblingBreaker(
            sibling,
            metrics,
            failures=settings.sibling_breaker_failures,
            open_s=settings.sibling_breaker_open_s,
            trials=settings.sibling_breaker_trials,
        )
        self._settings = settings
        self._stub_class = stub_class
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {settings.sibling_token}"),)
            if settings.sibling_token
            else ()
        )
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    @property
    def configured(self) -> bool:
        return self.target is not None

    async def open(self) -> None:
        if self.target is not None and self._channel is None:
            self._channel = open_channel(self.target, self.service, self._settings)
            self._stub = self._stub_class(self._channel)

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def call(self, method: str, request: Any) -> Any:
        """Call ``method`` with ``request``; see the module's docstring for what it raises."""
        if self._stub is None:
            raise SiblingUnavailable(f"the {self.sibling} service is not configured")
        rpc = getattr(self._stub, method)

        async def attempt() -> Any:
            return await rpc(request, timeout=self.deadline_s, metadata=self._metadata)

        try:
            response = await self.breaker.call(attempt)
        except BreakerOpen as exc:
            self._count("breaker_open")
            raise SiblingUnavailable(f"the {self.sibling} service's breaker is open") from exc
        except grpc.aio.AioRpcError as exc:
            if is_failure(exc):
                self._count(exc.code().name.lower())
                raise SiblingUnavailable(
                    f"the {self.sibling} service failed: {exc.code().name}"
                ) from exc
            self._count("answered_" + exc.code().name.lower())
            raise
        self._count("ok")
        return response

    def fallback(self, reason: str) -> None:
        """Count (and log at debug) an answer given without the sibling."""
        self.metrics.fallbacks.add(1, {"sibling": self.sibling, "reason": reason})
        log.debug("sibling fallback", sibling=self.sibling, reason=reason)

    def _count(self, outcome: str) -> None:
        self.metrics.calls.add(1, {"sibling": self.sibling, "outcome": outcome})
