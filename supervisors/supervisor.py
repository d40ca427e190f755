"""``Supervisor``: OTP's supervisor behaviour as an actor on the loop.

A supervisor starts its children in order, watches them, restarts them as its
strategy and their restart values say, and stops them in reverse order. It is
itself an actor, so supervisors nest into trees: a supervisor that exceeds its
restart intensity terminates its children and crashes, and its own parent
decides what happens next (escalation).

Defaults are Erlang/OTP's: ``max_restarts=1`` within ``max_seconds=5``. They
are deliberately strict: a child that crashes twice within five seconds
usually will again, and escalating lets a larger part of the tree start from a
known state. Trees that expect bursts of failures (one actor per connection)
set their own limits.

The supervisor reacts to child exits one at a time, in the order they happen,
through its own inbox; an exit that concerns a child it already replaced or
stopped is recognised as stale and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from supervisors._children import (
    ChildDown,
    RestartIntensity,
    report_restart,
    start_child,
    terminate_child,
    watch_child,
)
from supervisors.actor import AsyncioActor
from supervisors.errors import (
    ChildExists,
    ChildNotFound,
    StartChildError,
    SupervisorError,
)
from supervisors.exits import ExitReason
from supervisors.ref import Monitor, Ref
from supervisors.spec import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildType,
    OnRestart,
    Restart,
    Strategy,
)

__all__ = ["Supervisor"]

logger = logging.getLogger("supervisors")


class _Child:
    __slots__ = ("monitor", "ref", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.ref: Ref[Any] | None = None
        self.monitor: Monitor | None = None


class Supervisor(AsyncioActor):
    """A static supervisor: a list of child specs and a restart strategy.

    Start it like any actor (``Supervisor.start(children, strategy=...)``) and
    ``await ref.started()``: that returns once every child has started, or
    raises if one could not (the ones already started are stopped again).

    The OTP API is available through the proxy, each call awaitable:
    ``which_children``, ``count_children``, ``start_child``,
    ``terminate_child``, ``restart_child``, ``delete_child``.

    ``clock`` is what restart intensity measures time with (seconds, as
    ``time.monotonic``); tests pass a fake one.
    """

    expected_errors = (SupervisorError,)

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 1,
        max_seconds: float = 5.0,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_restart: OnRestart | None = None,
    ) -> None:
        super().__init__()
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            msg = f"duplicate child ids in {ids!r}"
            raise ValueError(msg)
        self.name = name or type(self).__name__
        self.strategy = Strategy(strategy)
        self._children = [_Child(spec) for spec in children]
        self._intensity = RestartIntensity(self.name, max_restarts, max_seconds, clock)
        self._on_restart = on_restart

    def __str__(self) -> str:
        return f"{self.name} ({self.actor_urn[9:17]})"

    # -- lifecycle ----------------------------------------------------------------

    async def on_start(self) -> None:
        for index, child in enumerate(self._children):
            try:
                await self._start(child)
            except StartChildError:
                await self._terminate_all(self._children[:index])
                raise

    async def on_stop(self) -> None:
        await self._terminate_all(self._children)

    def _on_exit(self, reason: ExitReason) -> None:
        # Killed or crashed with children still up: take them down too, as
        # linked processes die with their supervisor in OTP.
        for child in reversed(self._children):
            ref, child.ref = child.ref, None
            if child.monitor is not None:
                child.monitor.cancel()
            if ref is not None:
                ref.kill(f"supervisor {self.name} exited: {reason}")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildDown):
            return self._child_down(message.ref, message.reason)
        return super().on_receive(message)

    # -- the OTP API --------------------------------------------------------------

    def which_children(self) -> list[ChildInfo]:
        """Every child spec with its live ref (``None`` if not running), in start order."""
        return [ChildInfo(c.spec.id, c.ref, c.spec.type, c.spec.restart) for c in self._children]

    def count_children(self) -> ChildCounts:
        """How many specs, live children, supervisors and workers (as OTP counts them)."""
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in self._children if c.ref is not None),
            supervisors=sum(1 for c in self._children if c.spec.type is ChildType.SUPERVISOR),
            workers=sum(1 for c in self._children if c.spec.type is ChildType.WORKER),
        )

    async def start_child(self, spec: ChildSpec) -> Ref[Any]:
        """Add a child spec at the end and start it."""
        if any(c.spec.id == spec.id for c in self._children):
            raise ChildExists(spec.id)
        child = _Child(spec)
        ref = await self._start(child)
        self._children.append(child)
        return ref

    async def terminate_child(self, child_id: Hashable) -> None:
        """Stop a child; its spec stays (temporary children's specs go) until deleted."""
        child = self._find(child_id)
        await self._terminate(child)
        if child.spec.restart is Restart.TEMPORARY:
            self._children.remove(child)

    async def restart_child(self, child_id: Hashable) -> Ref[Any]:
        """Start a terminated child again from its spec."""
        child = self._find(child_id)
        if child.ref is not None:
            raise ChildExists(child_id)
        return await self._start(child)

    def delete_child(self, child_id: Hashable) -> None:
        """Forget a terminated child's spec."""
        child = self._find(child_id)
        if child.ref is not None:
            raise ChildExists(child_id)
        self._children.remove(child)

    # -- the engine -----------------------------------------------------------------

    def _find(self, child_id: Hashable) -> _Child:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        raise ChildNotFound(child_id)

    async def _start(self, child: _Child) -> Ref[Any]:
        ref = await start_child(child.spec)
        if self._exited:
            # Killed while the child started, and the cancellation did not
            # reach this coroutine (a start function may swallow it): the
            # child would run unsupervised, so it goes too.
            ref.kill(f"supervisor {self.name} exited")
            raise asyncio.CancelledError
        child.ref = ref
        child.monitor = watch_child(self.actor_ref, ref)
        return ref

    async def _terminate(self, child: _Child) -> None:
        if child.monitor is not None:
            child.monitor.cancel()
            child.monitor = None
        ref = child.ref
        if ref is None:
            return
        try:
            await terminate_child(ref, child.spec)
        finally:
            # Only now: if this supervisor is killed while the child is still
            # stopping, ``_on_exit`` must find the child to kill it too.
            child.ref = None

    async def _terminate_all(self, children: Sequence[_Child]) -> None:
        for child in reversed(children):
            await self._terminate(child)

    async def _child_down(self, ref: Ref[Any], reason: ExitReason) -> None:
        child = next((c for c in self._children if c.ref is ref), None)
        if child is None:
            return  # stale: a child already stopped or replaced
        child.ref = None
        child.monitor = None
        spec = child.spec
        log = logger.error if reason.abnormal else logger.info
        log("%s: child %r exited: %s", self, spec.id, reason)
        if not spec.restart.should_restart(reason):
            if spec.restart is Restart.TEMPORARY:
                self._children.remove(child)
            return
        report_restart(self._on_restart, self, spec.id, reason)
        await self._restart(child)

    async def _restart(self, failed: _Child) -> None:
        """Apply the strategy; a failed restart counts as one more restart."""
        while True:
            try:
                self._intensity.record()
            except Exception:
                logger.error("%s: restart intensity exceeded; shutting down", self)
                await self._terminate_all(self._children)
                raise
            try:
                await self._restart_by_strategy(failed)
                return
            except StartChildError as exc:
                logger.error("%s: restart failed: %s", self, exc)

    async def _restart_by_strategy(self, failed: _Child) -> None:
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [failed]
        else:
            index = self._children.index(failed)
            first = 0 if self.strategy is Strategy.ONE_FOR_ALL else index
            group = self._children[first:]
            others = [c for c in group if c is not failed]
            await self._terminate_all(others)
            for child in others:
                if child.spec.restart is Restart.TEMPORARY:
                    self._children.remove(child)
            group = [c for c in group if c in self._children]
        for child in group:
            if child.ref is None:
                await self._start(child)
