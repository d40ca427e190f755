"""What both supervisor kinds do to a child: start, terminate, count restarts."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka

from supervisors.actor import request_shutdown
from supervisors.errors import RestartIntensityExceeded, StartChildError
from supervisors.exits import ExitReason
from supervisors.ref import Monitor, Ref
from supervisors.spec import ChildSpec

__all__ = ["ChildDown", "RestartIntensity", "start_child", "terminate_child", "watch_child"]

logger = logging.getLogger("supervisors")


async def start_child(spec: ChildSpec) -> Ref[Any]:
    """Start the child of ``spec`` and wait until its ``on_start`` is done.

    Raises:
        StartChildError: the start function failed, returned something that is
            not a runtime ``Ref``, or the child died while starting.
    """
    try:
        started = spec.start()
        ref = await started if inspect.isawaitable(started) else started
    except Exception as exc:
        raise StartChildError(spec.id, exc) from exc
    if not isinstance(ref, Ref):
        if isinstance(ref, pykka.ActorRef) and ref.is_alive():
            ref.stop(block=False)
        msg = f"start function returned {ref!r}, not a supervisors.Ref"
        raise StartChildError(spec.id, msg)
    try:
        await ref.started()
    except pykka.ActorDeadError as exc:
        raise StartChildError(spec.id, exc.__cause__ or exc) from (exc.__cause__ or exc)
    except BaseException:
        # The supervisor died (was killed) while this child was starting: the
        # child is nobody's now, so it goes too rather than run unsupervised.
        ref.kill("supervisor gone while the child was starting")
        raise
    return ref


async def terminate_child(ref: Ref[Any], spec: ChildSpec) -> ExitReason:
    """Stop a child as its spec says: a shutdown request, then a kill at the deadline."""
    if ref.exit_reason is not None:
        return ref.exit_reason
    shutdown = spec.shutdown
    if shutdown == "brutal_kill":
        ref.kill("brutal_kill")
        return await ref.wait_exit()
    try:
        request_shutdown(ref)
    except pykka.ActorDeadError:
        return await ref.wait_exit()
    if shutdown == "infinity":
        return await ref.wait_exit()
    assert isinstance(shutdown, float | int)
    # asyncio.timeout, not asyncio.wait_for: on Python 3.11, wait_for swallows a
    # cancellation that arrives as the child exits, and a supervisor killed at
    # that moment would carry on starting children that nobody supervises.
    try:
        async with asyncio.timeout(shutdown):
            return await ref.wait_exit()
    except TimeoutError:
        logger.warning("child %r did not stop within %s s; killing it", spec.id, shutdown)
        ref.kill("shutdown timeout")
        return await ref.wait_exit()


class RestartIntensity:
    """OTP's restart intensity: at most ``max_restarts`` within ``max_seconds``."""

    __slots__ = ("_clock", "_restarts", "max_restarts", "max_seconds", "owner")

    def __init__(
        self,
        owner: str,
        max_restarts: int,
        max_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_restarts < 0 or max_seconds <= 0:
            msg = "max_restarts must be >= 0 and max_seconds > 0"
            raise ValueError(msg)
        self.owner = owner
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._clock = clock
        self._restarts: deque[float] = deque()

    def record(self, now: float | None = None) -> None:
        """Count one restart.

        Raises:
            RestartIntensityExceeded: if this restart is one too many.
        """
        now = self._clock() if now is None else now
        restarts = self._restarts
        restarts.append(now)
        while restarts and restarts[0] <= now - self.max_seconds:
            restarts.popleft()
        if len(restarts) > self.max_restarts:
            raise RestartIntensityExceeded(self.owner, self.max_restarts, self.max_seconds)


class ChildDown:
    """A supervised child exited: the message a supervisor gets from its monitor."""

    __slots__ = ("reason", "ref")

    def __init__(self, ref: Ref[Any], reason: ExitReason) -> None:
        self.ref = ref
        self.reason = reason


def watch_child(supervisor: Ref[Any], child: Ref[Any]) -> Monitor:
    """Monitor ``child`` so that its exit reaches ``supervisor``'s inbox in order."""

    def tell_down(ref: Ref[Any], reason: ExitReason) -> None:
        if supervisor.is_alive():
            supervisor.tell(ChildDown(ref, reason))

    return child.monitor(tell_down)
