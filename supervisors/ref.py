"""``Ref``: pykka's ``ActorRef`` with what supervision needs.

A ``Ref`` is what callers hold. On top of pykka's ``tell``, ``ask``, ``stop``
and ``proxy`` it adds OTP's monitors and links, ``kill()``, and ways to wait
for an actor to have started (``on_start`` done) or to have exited.

The exit machinery lives on the ref rather than on the actor object so that it
outlives the actor: a monitor set on a dead actor fires at once with the
reason it died of, like OTP's ``DOWN`` for a process that is already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import pykka

from supervisors._envelopes import CrashRequest, Envelope
from supervisors._loop import LoopBinding
from supervisors.exits import Crashed, ExitReason, Killed, LinkedExit
from supervisors.future import wait_for_future

__all__ = ["ExitSignal", "Monitor", "Ref"]

logger = logging.getLogger("supervisors")

A = TypeVar("A")

ExitCallback = Callable[["Ref[Any]", ExitReason], None]

_monitor_ids = itertools.count(1)


class _Exitable(Protocol):
    """What a ref needs from the runtime's actor classes."""

    trap_exits: bool

    def _kill(self, reason: ExitReason) -> None: ...


class Monitor:
    """A handle on one monitor; ``cancel()`` is OTP's ``demonitor``."""

    __slots__ = ("_cancelled", "_id", "_ref")

    def __init__(self, ref: Ref[Any], monitor_id: int) -> None:
        self._ref = ref
        self._id = monitor_id
        self._cancelled = False

    def cancel(self) -> None:
        """Stop watching; the callback will not be called after this."""
        self._cancelled = True
        monitors = self._ref._monitors
        if monitors is not None:
            monitors.pop(self._id, None)


class ExitSignal:
    """Delivered to an actor with ``trap_exits = True`` when a linked actor exits abnormally."""

    __slots__ = ("reason", "ref")

    def __init__(self, ref: Ref[Any], reason: ExitReason) -> None:
        self.ref = ref
        self.reason = reason

    def __repr__(self) -> str:
        return f"ExitSignal({self.ref}, {self.reason})"


class Ref(pykka.ActorRef[Any], Generic[A]):
    """A reference to a running actor, with monitors, links and kill.

    Created by the runtime's actor classes; never construct one yourself.
    All exit callbacks run on the runtime's event loop thread.
    """

    def __init__(self, actor: Any, binding: LoopBinding) -> None:
        super().__init__(actor)
        self._binding = binding
        self._exit_reason: ExitReason | None = None
        self._monitors: dict[int, ExitCallback] | None = None
        self._links: set[Ref[Any]] | None = None
        self._exit_waiter: asyncio.Future[ExitReason] | None = None
        self._start_waiter: asyncio.Future[None] | None = None
        self._started = False
        self._start_error: BaseException | None = None
        self._proxy: pykka.ActorProxy[Any] | None = None

    def proxy(self) -> pykka.ActorProxy[Any]:
        """pykka's proxy, made once per ref and reused.

        Building a proxy introspects every attribute of the actor (hundreds
        of microseconds for a rich actor), while a proxy holds nothing that
        changes between calls; so the ref keeps the first one.

        Raises:
            pykka.ActorDeadError: if the actor is not alive.
        """
        proxy = self._proxy
        if proxy is None:
            proxy = self._proxy = super().proxy()
        elif not self.is_alive():
            msg = f"{self} not found"
            raise pykka.ActorDeadError(msg)
        return proxy

    # -- what happened -------------------------------------------------------

    @property
    def has_started(self) -> bool:
        """Whether the actor's ``on_start`` has completed."""
        return self._started

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the actor exited, or ``None`` while it lives."""
        return self._exit_reason

    async def started(self) -> None:
        """Wait until the actor's ``on_start`` has completed.

        Raises:
            pykka.ActorDeadError: if the actor died before it finished starting;
                the exception ``on_start`` raised is chained as the cause.
        """
        if not self._started and self._start_error is None:
            if self._start_waiter is None:
                self._start_waiter = self._binding.loop.create_future()
            await asyncio.shield(self._start_waiter)
        if self._start_error is not None:
            msg = f"{self} failed to start: {self._exit_reason}"
            raise pykka.ActorDeadError(msg) from self._start_error

    async def wait_exit(self) -> ExitReason:
        """Wait until the actor has exited and return why."""
        if self._exit_reason is not None:
            return self._exit_reason
        if self._exit_waiter is None:
            self._exit_waiter = self._binding.loop.create_future()
        return await asyncio.shield(self._exit_waiter)

    async def ask_async(self, message: Any, *, timeout: float | None = None) -> Any:
        """``ask()`` for coroutines: never blocks the loop, whatever the actor's kind."""
        return await wait_for_future(self.ask(message, block=False), timeout)

    def ask_soon(self, message: Any) -> asyncio.Future[Any]:
        """``ask(block=False)`` for a coroutine on the actor's own loop: a plain asyncio future.

        The hot-path ask: no pykka future with a waiter of its own behind it,
        just the future the caller awaits. Only for an :class:`AsyncioActor`
        asked from its loop's thread (anything else gets :meth:`ask_async`'s
        path); a dead actor's answer is :class:`pykka.ActorDeadError`, as for
        ``ask``.
        """
        inbox = self.actor_inbox
        if not getattr(inbox, "on_loop", False) or not self._binding.on_loop_thread():
            return asyncio.ensure_future(self.ask_async(message))
        reply = _LoopReply(loop=self._binding.loop)
        if self.actor_stopped.is_set():
            reply.set_exception(pykka.ActorDeadError(f"{self} not found"))
        else:
            inbox.put(Envelope(message, reply_to=reply))  # type: ignore[arg-type]
        return reply

    # -- monitors and links ---------------------------------------------------

    def monitor(self, callback: ExitCallback) -> Monitor:
        """Call ``callback(ref, reason)`` on the loop once the actor exits.

        Monitoring an actor that already exited calls back at once (soon) with
        the reason it exited with.
        """
        monitor_id = next(_monitor_ids)
        handle = Monitor(self, monitor_id)
        if self._exit_reason is not None:
            reason = self._exit_reason

            def call_unless_cancelled() -> None:
                if not handle._cancelled:
                    _safe_call(callback, self, reason)

            self._binding.loop.call_soon_threadsafe(call_unless_cancelled)
            return handle
        if self._monitors is None:
            self._monitors = {}
        self._monitors[monitor_id] = callback
        return handle

    def link(self, other: Ref[Any]) -> None:
        """Link two actors: if either exits abnormally, the other is told.

        An actor with ``trap_exits = True`` receives an :class:`ExitSignal`
        message; any other actor is killed with ``Crashed(LinkedExit)``.
        Linking to an actor that already exited abnormally signals at once.
        """
        for a, b in ((self, other), (other, self)):
            reason = a._exit_reason
            if reason is not None:
                if reason.abnormal:
                    b._signal_exit(a, reason)
                return
        for a, b in ((self, other), (other, self)):
            if a._links is None:
                a._links = set()
            a._links.add(b)

    def unlink(self, other: Ref[Any]) -> None:
        """Remove a link set by :meth:`link`; no signal travels after this."""
        for a, b in ((self, other), (other, self)):
            if a._links is not None:
                a._links.discard(b)

    def kill(self, cause: str = "killed") -> None:
        """Stop the actor now without running ``on_stop`` (OTP's ``exit(Pid, kill)``).

        Queued messages are dropped: their ``ask`` callers get
        :class:`pykka.ActorDeadError`. A coroutine handler in progress is
        cancelled. A ``ThreadActor``'s handler cannot be interrupted: the actor
        is dead to everyone at once, and its thread ends when the handler returns.
        """
        actor = self._actor_weakref()
        if actor is None or self._exit_reason is not None:
            return
        exitable: _Exitable = actor
        exitable._kill(Killed(cause))

    def crash(self, cause: str = "crash requested") -> None:
        """Make the actor crash with :class:`~supervisors.exits.InjectedCrash` (fault injection).

        Unlike :meth:`kill`, this is a crash from inside: it reaches the actor through its
        mailbox, after the messages already queued, and the actor fails as on a bug in a
        handler: ``on_failure`` runs (so it releases what it holds), the exit reason is
        ``Crashed(InjectedCrash(cause))``, and a supervisor restarts it per its restart type.

        Raises:
            pykka.ActorDeadError: the actor is not alive.
        """
        self.tell(CrashRequest(cause))

    # -- called by the runtime ------------------------------------------------

    def _mark_started(self) -> None:
        self._started = True
        waiter = self._start_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _notify_exit(self, reason: ExitReason) -> None:
        """Record the exit and tell waiters, monitors and links. Loop thread only."""
        if self._exit_reason is not None:
            return
        self._exit_reason = reason
        self._proxy = None  # a proxy holds the actor itself: let it go
        if not self._started:
            self._start_error = (
                reason.exception
                if isinstance(reason, Crashed)
                else pykka.ActorDeadError(f"{self} exited: {reason}")
            )
            if self._start_waiter is not None and not self._start_waiter.done():
                self._start_waiter.set_result(None)
        if self._exit_waiter is not None and not self._exit_waiter.done():
            self._exit_waiter.set_result(reason)
        monitors, self._monitors = self._monitors, None
        if monitors:
            for callback in monitors.values():
                _safe_call(callback, self, reason)
        links, self._links = self._links, None
        if links:
            for peer in links:
                if peer._links is not None:
                    peer._links.discard(self)
                if reason.abnormal:
                    peer._signal_exit(self, reason)

    def _signal_exit(self, source: Ref[Any], reason: ExitReason) -> None:
        actor = self._actor_weakref()
        if actor is None or self._exit_reason is not None:
            return
        exitable: _Exitable = actor
        if exitable.trap_exits:
            with contextlib.suppress(pykka.ActorDeadError):
                self.tell(ExitSignal(source, reason))
            return
        exitable._kill(Crashed(LinkedExit(str(source), reason)))


def _safe_call(callback: ExitCallback, ref: Ref[Any], reason: ExitReason) -> None:
    try:
        callback(ref, reason)
    except Exception:
        logger.exception("exit callback for %s failed", ref)


class _LoopReply(asyncio.Future[Any]):
    """An asyncio future that the runtime can answer as it answers a pykka future."""

    def set(self, value: Any = None) -> None:
        if not self.done():
            self.set_result(value)

    def set_exception(self, exception: Any = None) -> None:
        # pykka's form is an exc_info tuple; asyncio's an exception.
        if isinstance(exception, tuple):
            exception = exception[1] if exception[1] is not None else exception[0]()
        if not self.done():
            super().set_exception(exception)
