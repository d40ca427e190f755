"""``DynamicSupervisor``: children started on demand, one_for_one.

Elixir's DynamicSupervisor: it starts with no children; ``start_child(spec)``
adds one at a time (a conversation actor when a conversation becomes active,
a connection actor per WebSocket). Children are independent, so the strategy
is always one_for_one, and on shutdown they are stopped all at once rather
than one after another: with ten thousand connection actors a sequential stop
would never meet a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pykka

from supervisors._children import (
    ChildDown,
    RestartIntensity,
    finish_start,
    report_restart,
    run_start,
    start_child,
    terminate_child,
    wait_started,
    watch_child,
)
from supervisors.actor import AsyncioActor
from supervisors.errors import (
    AlreadyRegistered,
    ChildNotFound,
    MaxChildrenReached,
    RestartIntensityExceeded,
    StartChildError,
    SupervisorError,
)
from supervisors.exits import ExitReason
from supervisors.ref import Monitor, Ref
from supervisors.spec import ChildCounts, ChildInfo, ChildSpec, ChildType, OnRestart

__all__ = ["DynamicSupervisor"]

logger = logging.getLogger("supervisors")


class DynamicSupervisor(AsyncioActor):
    """Supervises children started with ``start_child``; at most ``max_children``.

    Through the proxy (each call awaitable): ``start_child(spec)`` returns
    the child's ref, or raises :class:`MaxChildrenReached` or
    :class:`StartChildError` without harming the supervisor;
    ``terminate_child(ref)``, ``which_children()``, ``count_children()``.

    ``clock`` is what restart intensity measures time with (seconds, as
    ``time.monotonic``); tests pass a fake one.

    ``child_max_restarts`` in ``child_max_seconds`` bounds the restarts of each
    child on its own (``None``: no bound but the supervisor's): a child that
    crashes more often is given up on (logged, forgotten, not restarted) while
    the supervisor and its other children carry on. OTP has only the
    supervisor's intensity; with thousands of independent children, one child
    crashing in a loop would otherwise use up the budget of all of them.
    """

    expected_errors = (SupervisorError,)

    def __init__(
        self,
        *,
        max_children: int | None = None,
        max_restarts: int = 1,
        max_seconds: float = 5.0,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        child_max_restarts: int | None = None,
        child_max_seconds: float = 5.0,
        on_restart: OnRestart | None = None,
    ) -> None:
        super().__init__()
        if max_children is not None and max_children < 0:
            msg = "max_children must be >= 0"
            raise ValueError(msg)
        self.name = name or type(self).__name__
        self.max_children = max_children
        self._intensity = RestartIntensity(self.name, max_restarts, max_seconds, clock)
        self._on_restart = on_restart
        self._clock = clock
        self._child_limit = (
            None if child_max_restarts is None else (child_max_restarts, child_max_seconds)
        )
        # The restarts of each child restarted at least once, kept with its live ref.
        self._child_restarts: dict[Ref[Any], RestartIntensity] = {}
        # Insertion-ordered: which_children lists children in start order.
        self._children: dict[Ref[Any], tuple[ChildSpec, Monitor]] = {}
        # The tasks that answer start_child once a child's on_start is done.
        self._answering: set[asyncio.Task[None]] = set()

    def __str__(self) -> str:
        return f"{self.name} ({self.actor_urn[9:17]})"

    # -- the API --------------------------------------------------------------------

    def start_child(self, spec: ChildSpec) -> Coroutine[Any, Any, None] | None:
        """Start a child from ``spec`` and supervise it.

        The caller is answered once the child's ``on_start`` is done, but the
        supervisor does not wait for it: the child is supervised (and counted
        against ``max_children``) from the moment it exists, and the next
        request is taken at once. OTP's supervisor runs each child's init in
        turn; here, where waiting costs at least one loop turn, a thousand
        clients reconnecting together would queue for a second behind each
        other's starts. A child that dies while starting is forgotten, never
        restarted, and the caller gets :class:`StartChildError`, as OTP's
        ``start_child`` returns an error.
        """
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise MaxChildrenReached(self.max_children)
        started = run_start(spec)
        if isinstance(started, Ref):
            self._supervise_starting(spec, started)
            return None
        return self._start_awaited(spec, started)

    async def _start_awaited(self, spec: ChildSpec, started: Awaitable[Any]) -> None:
        ref = await finish_start(spec, started)
        if self._exited:  # killed meanwhile: see Supervisor._start
            ref.kill(f"supervisor {self.name} exited")
            raise asyncio.CancelledError
        self._supervise_starting(spec, ref)

    def _supervise_starting(self, spec: ChildSpec, ref: Ref[Any]) -> None:
        self._children[ref] = (spec, watch_child(self.actor_ref, ref))
        caller = self.defer_reply()
        task = asyncio.get_running_loop().create_task(self._answer_once_started(ref, spec, caller))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def terminate_child(self, ref: Ref[Any]) -> None:
        """Stop a child as its spec says and forget it."""
        entry = self._children.get(ref)
        if entry is None:
            raise ChildNotFound(ref)
        spec, monitor = entry
        monitor.cancel()
        try:
            await terminate_child(ref, spec)
        finally:
            # Forgotten only now, so that ``_on_exit`` kills a child that is
            # still stopping if this supervisor is killed meanwhile.
            self._children.pop(ref, None)
            self._child_restarts.pop(ref, None)

    def which_children(self) -> list[ChildInfo]:
        """The live children, in start order."""
        return [
            ChildInfo(spec.id, ref, spec.type, spec.restart)
            for ref, (spec, _) in self._children.items()
        ]

    def count_children(self) -> ChildCounts:
        """As OTP counts them: specs == active for a dynamic supervisor."""
        supervisors = sum(1 for s, _ in self._children.values() if s.type is ChildType.SUPERVISOR)
        total = len(self._children)
        return ChildCounts(
            specs=total, active=total, supervisors=supervisors, workers=total - supervisors
        )

    # -- lifecycle ------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildDown):
            return self._child_down(message.ref, message.reason)
        return super().on_receive(message)

    async def on_stop(self) -> None:
        children = list(self._children.items())
        for _, (_, monitor) in children:
            monitor.cancel()
        # The children stay listed until they are down: if this supervisor is
        # killed meanwhile (a shutdown deadline), ``_on_exit`` kills them.
        await asyncio.gather(*(terminate_child(ref, spec) for ref, (spec, _) in children))
        self._children.clear()
        self._child_restarts.clear()

    def _on_exit(self, reason: ExitReason) -> None:
        children, self._children = self._children, {}
        self._child_restarts.clear()
        for ref, (_, monitor) in children.items():
            monitor.cancel()
            ref.kill(f"supervisor {self.name} exited: {reason}")

    # -- the engine -----------------------------------------------------------------

    async def _start(self, spec: ChildSpec) -> Ref[Any]:
        ref = await start_child(spec)
        if self._exited:  # killed meanwhile: see Supervisor._start
            ref.kill(f"supervisor {self.name} exited")
            raise asyncio.CancelledError
        monitor = watch_child(self.actor_ref, ref)
        self._children[ref] = (spec, monitor)
        return ref

    async def _answer_once_started(
        self, ref: Ref[Any], spec: ChildSpec, caller: pykka.Future[Any] | None
    ) -> None:
        try:
            await wait_started(ref, spec)
        except StartChildError as exc:
            entry = self._children.pop(ref, None)
            if entry is not None:
                entry[1].cancel()
            if self._awaits_answer(caller):
                self.reply_error(caller, exc)
            return
        if self._awaits_answer(caller):
            self.reply(caller, ref)

    def _awaits_answer(self, caller: pykka.Future[Any] | None) -> bool:
        # Once this supervisor has exited, its callers have been told (ActorDeadError).
        return self._deferred is not None and caller in self._deferred

    def _child_down(self, ref: Ref[Any], reason: ExitReason) -> Coroutine[Any, Any, None] | None:
        # Synchronous unless a restart is due: a coroutine handler costs the supervisor a
        # loop turn, and a thousand connections closing at once would queue behind it.
        entry = self._children.pop(ref, None)
        restarts = self._child_restarts.pop(ref, None)
        if entry is None:
            return None
        if not ref.has_started:
            return None  # a failed start: _answer_once_started tells the caller
        spec, _ = entry
        if reason.abnormal:
            logger.error("%s: child %r exited: %s", self, spec.id, reason)
        if not spec.restart.should_restart(reason):
            return None
        report_restart(self._on_restart, self, spec.id, reason)
        return self._restart(spec, restarts or self._new_child_restarts(spec))

    def _new_child_restarts(self, spec: ChildSpec) -> RestartIntensity | None:
        if self._child_limit is None:
            return None
        max_restarts, max_seconds = self._child_limit
        return RestartIntensity(f"{self.name}/{spec.id!r}", max_restarts, max_seconds, self._clock)

    async def _restart(self, spec: ChildSpec, restarts: RestartIntensity | None) -> None:
        while True:
            if not self._child_may_restart(spec, restarts):
                return
            try:
                self._intensity.record()
            except Exception:
                logger.error("%s: restart intensity exceeded; shutting down", self)
                await self.on_stop()
                raise
            try:
                ref = await self._start(spec)
            except StartChildError as exc:
                if isinstance(exc.__cause__, AlreadyRegistered):
                    # The child's registered name is held by a live actor: another start
                    # of the same child (a caller's, on demand) won the race after the
                    # crash. The child runs; trying again would fail the same way until
                    # the restart intensity shut this supervisor down.
                    logger.info("%s: %r already restarted elsewhere: %s", self, spec.id, exc)
                    return
                logger.error("%s: restart of %r failed: %s", self, spec.id, exc)
                continue
            if restarts is not None:
                self._child_restarts[ref] = restarts
            return

    def _child_may_restart(self, spec: ChildSpec, restarts: RestartIntensity | None) -> bool:
        """Count one restart of this child; False once it has used up its own bound."""
        if restarts is None:
            return True
        try:
            restarts.record()
        except RestartIntensityExceeded:
            logger.error(
                "%s: child %r restarted more than %d times in %g s; giving up on it",
                self,
                spec.id,
                restarts.max_restarts,
                restarts.max_seconds,
            )
            return False
        return True
