"""What both supervisor kinds do to a child: start, terminate, count restarts."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import pykka

from supervisors.actor import request_shutdown
from supervisors.errors import RestartIntensityExceeded, StartChildError
from supervisors.exits import ExitReason
from supervisors.ref import Monitor, Ref
from supervisors.spec import ChildSpec, OnRestart

__all__ = [
    "ChildDown",
    "RestartIntensity",
    "finish_start",
    "report_restart",
    "run_start",
    "spawn_child",
    "start_child",
    "terminate_child",
    "wait_started",
    "watch_child",
]

logger = logging.getLogger("supervisors")


async def start_child(spec: ChildSpec) -> Ref[Any]:
    """Start the child of ``spec`` and wait until its ``on_start`` is done.

    Raises:
        StartChildError: the start function failed, returned something that is
            not a runtime ``Ref``, or the child died while starting.
    """
    ref = await spawn_child(spec)
    await wait_started(ref, spec)
    return ref


async def spawn_child(spec: ChildSpec) -> Ref[Any]:
    """Run ``spec``'s start function: the child exists, its ``on_start`` may still run.

    Raises:
        StartChildError: the start function failed or returned something that
            is not a runtime ``Ref``.
    """
    started = run_start(spec)
    return started if isinstance(started, Ref) else await finish_start(spec, started)


def run_start(spec: ChildSpec) -> Ref[Any] | Awaitable[Any]:
    """Call ``spec``'s start function: the child's ``Ref``, or what to await for it
    (see :func:`finish_start`) when the start function is asynchronous.

    Raises:
        StartChildError: the start function failed or returned something that
            is not a runtime ``Ref``.
    """
    try:
        started = spec.start()
    except Exception as exc:
        raise StartChildError(spec.id, exc) from exc
    return started if inspect.isawaitable(started) else _checked(spec, started)


async def finish_start(spec: ChildSpec, started: Awaitable[Any]) -> Ref[Any]:
    """Await an asynchronous start function's result: the child's ``Ref``."""
    try:
        ref = await started
    except Exception as exc:
        raise StartChildError(spec.id, exc) from exc
    return _checked(spec, ref)


def _checked(spec: ChildSpec, ref: Any) -> Ref[Any]:
    if not isinstance(ref, Ref):
        if isinstance(ref, pykka.ActorRef) and ref.is_alive():
            ref.stop(block=False)
        msg = f"start function returned {ref!r}, not a supervisors.Ref"
        raise StartChildError(spec.id, msg)
    return ref


async def wait_started(ref: Ref[Any], spec: ChildSpec) -> None:
    """Wait until the child's ``on_start`` is done.

    Raises:
        StartChildError: the child died while starting.
    """
    try:
        await ref.started()
    except pykka.ActorDeadError as exc:
        raise StartChildError(spec.id, exc.__cause__ or exc) from (exc.__cause__ or exc)
    except BaseException:
        # The supervisor died (was killed) while this child was starting: the
        # child is nobody's now, so it goes too rather than run unsupervised.
        ref.kill("supervisor gone while the child was starting")
        raise


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


def report_restart(
    on_restart: OnRestart | None, supervisor: object, child_id: Hashable, reason: ExitReason
) -> None:
    """Tell ``on_restart`` that ``supervisor`` restarts ``child_id``; never let it break the
    supervisor."""
    if on_restart is None:
        return
    try:
        on_restart(child_id, reason)
    except Exception:
        logger.exception("%s: restart report for %r failed", supervisor, child_id)
