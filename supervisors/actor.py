"""``AsyncioActor``: pykka's actor model, run on an asyncio event loop.

pykka gives each ``ThreadingActor`` an OS thread. That caps a node at a few
thousand actors, far from one actor per WebSocket connection. This class keeps
pykka's programming model (subclass, ``start()``, ``ActorRef.tell/ask``,
proxies, ``ActorRegistry``, ``on_start``/``on_stop``/``on_failure``) and runs
the actor on the node's event loop through pykka's extension points
(``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``). They
are not pykka's public API: pyproject.toml pins pykka to one minor release
and lists every private name the runtime uses, and
``tests/supervisors/test_pykka_internals.py`` checks each of them.

How it runs
    An idle actor costs no task and no thread: only its objects. When a
    message arrives, the inbox schedules the actor's ``_drain`` callback, which
    handles queued messages one after another (at most ``throughput`` before
    giving other actors a turn). A handler that returns a coroutine is awaited
    in a task before the next message, so an actor still handles one message
    at a time, like a GenServer. ``on_start``, ``on_stop`` and ``on_failure``
    may be coroutines too.

How it dies (and what differs from pykka)
    - An exception in a handler crashes the actor, whether the message came
      by ``tell`` or ``ask`` (OTP's "let it crash"); an ``ask`` caller also gets
      the exception. Exceptions listed in ``expected_errors`` are errors as
      values: they go back to the ``ask`` caller and the actor carries on.
    - Every exit is reported to monitors with a reason (:mod:`supervisors.exits`).
    - A pending ``ask`` on an actor that exits is answered with
      :class:`pykka.ActorDeadError` at once.

Threads
    ``tell``/``ask`` are safe from any thread: the inbox hops onto the loop.
    Everything else about the actor runs on the loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
from pykka import ActorRegistry

from supervisors._envelopes import (
    SHUTDOWN,
    CrashRequest,
    Envelope,
    ShutdownRequest,
    is_stop,
    reject,
)
from supervisors._loop import LoopBinding, current_binding
from supervisors.exits import Crashed, ExitReason, InjectedCrash, Normal, Shutdown
from supervisors.future import AsyncioFuture
from supervisors.ref import Ref

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = ["AsyncioActor"]

logger = logging.getLogger("supervisors")


class _RegisteredRefs:
    """pykka's registry of live actors, found and removed by hash instead of by scan.

    pykka keeps every live ``ActorRef`` in a list, and each actor's exit scans it twice
    (``ref in refs``, then ``refs.remove(ref)``): with 10,000 actors alive a restart took
    0.27 ms instead of 0.06 ms, and stopping 10,000 actors newest first (as a node stops its
    connections) 1.07 s of loop time instead of 0.14 s. This holds the same refs in a dict
    (a ref hashes by identity, as it compares), in registration order, and offers the list
    operations pykka's ``ActorRegistry`` uses on it: ``append``, ``remove``, ``in``,
    iteration and ``[:]``. pykka's API is unchanged.
    """

    __slots__ = ("_refs",)

    def __init__(self, refs: Iterable[pykka.ActorRef[Any]] = ()) -> None:
        self._refs: dict[pykka.ActorRef[Any], None] = dict.fromkeys(refs)

    def append(self, ref: pykka.ActorRef[Any]) -> None:
        self._refs[ref] = None

    def remove(self, ref: pykka.ActorRef[Any]) -> None:
        try:
            del self._refs[ref]
        except KeyError:
            raise ValueError(f"{ref!r} is not registered") from None

    def __contains__(self, ref: object) -> bool:
        return ref in self._refs

    def __iter__(self) -> Iterator[pykka.ActorRef[Any]]:
        return iter(list(self._refs))  # a snapshot: registering while iterating is allowed

    def __getitem__(self, index: slice) -> list[pykka.ActorRef[Any]]:
        return list(self._refs)[index]

    def __len__(self) -> int:
        return len(self._refs)


def _index_pykka_registry() -> None:
    """Swap pykka's list of live actors for :class:`_RegisteredRefs` (once, at import)."""
    with ActorRegistry._actor_refs_lock:
        refs = ActorRegistry._actor_refs
        if not isinstance(refs, _RegisteredRefs):
            setattr(ActorRegistry, "_actor_refs", _RegisteredRefs(refs))  # noqa: B010


_index_pykka_registry()


class _StoppedFlag:
    """The part of ``threading.Event`` that pykka's refs use, without its lock."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True


class _Inbox:
    """An actor's queue on the loop; schedules the actor when mail arrives."""

    __slots__ = ("_actor", "_binding", "_items")
    #: Replies to this inbox's asks are set on the loop (``Ref.ask_soon``).
    on_loop = True

    def __init__(self, actor: AsyncioActor, binding: LoopBinding) -> None:
        self._actor: AsyncioActor | None = actor
        self._binding = binding
        self._items: deque[Envelope[Any]] = deque()

    def put(self, envelope: Envelope[Any], /) -> None:
        binding = self._binding
        if threading.get_ident() != binding.thread_id:
            binding.loop.call_soon_threadsafe(self.put, envelope)
            return
        actor = self._actor
        if actor is None:
            reject(envelope, "actor")
            return
        self._items.append(envelope)
        if not actor._scheduled:
            actor._scheduled = True
            binding.loop.call_soon(actor._drain)

    def put_first(self, envelope: Envelope[Any], /) -> None:
        """Queue ``envelope`` ahead of everything else (for shutdown requests)."""
        binding = self._binding
        if threading.get_ident() != binding.thread_id:
            binding.loop.call_soon_threadsafe(self.put_first, envelope)
            return
        actor = self._actor
        if actor is None:
            reject(envelope, "actor")
            return
        self._items.appendleft(envelope)
        if not actor._scheduled:
            actor._scheduled = True
            binding.loop.call_soon(actor._drain)

    def get(self) -> Envelope[Any]:
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items

    def close(self) -> list[Envelope[Any]]:
        """Refuse further mail and return what was still queued."""
        self._actor = None
        items = list(self._items)
        self._items.clear()
        return items


if TYPE_CHECKING:
    # To the type checker the base is opaque: pykka declares its hooks as
    # returning None, and this class lets them be coroutines. The members
    # that matter are declared again, with their types, on the class below.
    _ActorBase = Any
else:
    _ActorBase = pykka.Actor


class AsyncioActor(_ActorBase):  # type: ignore[misc]
    """A pykka actor whose inbox, futures and loop live on an asyncio event loop.

    Subclass it as you would ``pykka.ThreadingActor``; start it from a
    coroutine running on the node's loop (or from another thread once
    :func:`supervisors.bind_loop` has been called). Override ``on_receive``
    for plain messages, or define methods and call them through
    ``ref.proxy()``. Any handler or hook may be ``async def``.

    Class attributes a subclass may set:

    ``expected_errors``
        Exception types that are answers, not failures: raised in an ``ask``
        they go back to the caller and the actor keeps running.
    ``trap_exits``
        Receive :class:`supervisors.ExitSignal` messages from linked actors
        that exit abnormally, instead of dying with them.
    ``throughput``
        Messages handled in one go before other actors get the loop.
    """

    expected_errors: ClassVar[tuple[type[Exception], ...]] = ()
    trap_exits: ClassVar[bool] = False
    throughput: ClassVar[int] = 64

    actor_inbox: _Inbox
    actor_stopped: _StoppedFlag
    _actor_ref: Ref[Any]

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        # pykka.Actor.__init__ would build a threading.Event and a plain
        # ActorRef; this sets the same attributes with the loop's versions.
        binding = current_binding()
        self._binding = binding
        self.actor_urn = uuid.uuid4().urn
        self.actor_inbox = _Inbox(self, binding)
        self.actor_stopped = _StoppedFlag()
        self._actor_ref = Ref(self, binding)
        self._scheduled = True  # until on_start is done, mail just queues
        self._exited = False
        self._unregistered = False
        self._task: asyncio.Task[None] | None = None
        # The handler's coroutine that ``_task`` awaits, closed by a kill.
        self._task_coroutine: Coroutine[Any, Any, Any] | None = None
        self._current: Envelope[Any] | None = None
        # Replies a handler deferred (``defer_reply``) and has not given yet.
        self._deferred: set[pykka.Future[Any]] | None = None

    @property
    def actor_ref(self) -> Ref[Self]:
        """The actor's :class:`supervisors.Ref`."""
        return self._actor_ref

    if TYPE_CHECKING:
        actor_urn: str

        @classmethod
        def start(cls, *args: Any, **kwargs: Any) -> Ref[Self]: ...

        def on_receive(self, message: Any) -> Any: ...

        def _handle_receive(self, message: Any) -> Any: ...

    # -- hooks: pykka's, widened so that a subclass may make them coroutines -----

    def on_start(self) -> Coroutine[Any, Any, None] | None:
        """Run before the first message; may be ``async``. Raising crashes the actor."""
        return None

    def on_stop(self) -> Coroutine[Any, Any, None] | None:
        """Run when the actor stops (not when it crashes or is killed); may be ``async``."""
        return None

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Coroutine[Any, Any, None] | None:
        """Run after a crash in a handler, before watchers learn of it; may be ``async``."""
        return None

    def on_drained(self) -> None:
        """Run after each run of handled messages, when the actor gives up the loop.

        Called when the mailbox is empty, when the ``throughput`` budget is
        spent and when a coroutine handler starts (the messages behind it
        wait for it). For work that is cheaper done once for everything just
        handled: a conversation actor submits the sends it took as one chunk.
        Must not raise.
        """

    # -- pykka's extension points -------------------------------------------

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        msg = "AsyncioActor creates its inbox in __init__"
        raise NotImplementedError(msg)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return AsyncioFuture()

    def _start_actor_loop(self) -> None:
        binding = self._binding
        if binding.on_loop_thread():
            binding.loop.call_soon(self._begin)
        else:
            binding.loop.call_soon_threadsafe(self._begin)

    def _actor_loop(self) -> None:  # pragma: no cover - pykka's thread entry, unused here
        msg = "AsyncioActor runs through callbacks on the event loop"
        raise NotImplementedError(msg)

    # -- running --------------------------------------------------------------

    def _begin(self) -> None:
        if self._exited:
            return
        try:
            result = self.on_start()
        except Exception as exc:
            self._crash(exc, run_on_failure=False)
            return
        if type(result) is CoroutineType:
            self._spawn(result, lambda _: self._started(), self._start_failed)
            return
        self._started()

    def _started(self) -> None:
        self._actor_ref._mark_started()
        self._drain()

    def _start_failed(self, exc: BaseException) -> None:
        self._crash(exc, run_on_failure=False)

    def _drain(self) -> None:
        items = self.actor_inbox._items
        budget = self.throughput
        while items:
            if self._exited:
                return
            if not self._handle(items.popleft()):
                if not self._exited:
                    self.on_drained()  # a coroutine handler now has the actor
                return
            budget -= 1
            if budget == 0 and items:
                self._binding.loop.call_soon(self._drain)
                self.on_drained()
                return
        self._scheduled = False
        self.on_drained()

    def _handle(self, envelope: Envelope[Any]) -> bool:
        """Handle one message; return whether to go on with the next one now."""
        message = envelope.message
        if is_stop(message):
            reason: ExitReason = Shutdown() if type(message) is ShutdownRequest else Normal()
            # Kept as the current message so that a kill during an async
            # ``on_stop`` still answers the ``stop()`` caller.
            self._current = envelope
            self._begin_stop(reason, envelope)
            return False
        self._current = envelope
        try:
            if type(message) is CrashRequest:
                raise InjectedCrash(message.cause)
            result = self._handle_receive(message)
        except Exception as exc:
            self._current = None
            return self._failed(envelope, exc)
        if type(result) is CoroutineType:
            self._spawn(
                result,
                lambda value: self._handled(envelope, value),
                lambda exc: self._failed_async(envelope, exc),
            )
            return False
        self._current = None
        if envelope.reply_to is not None:
            envelope.reply_to.set(result)
        return not self._exited

    def _handled(self, envelope: Envelope[Any], value: Any) -> None:
        self._current = None
        if envelope.reply_to is not None:
            envelope.reply_to.set(value)
        self._drain()

    def _failed_async(self, envelope: Envelope[Any], exc: BaseException) -> None:
        self._current = None
        if self._failed(envelope, exc):
            self._drain()

    def _failed(self, envelope: Envelope[Any], exc: BaseException) -> bool:
        """A handler raised: answer the caller, then carry on or crash."""
        future = envelope.reply_to
        if future is not None:
            future.set_exception((type(exc), exc, exc.__traceback__))
        if isinstance(exc, self.expected_errors):
            if future is None:
                logger.debug("%s: expected error in a tell: %r", self, exc)
            return not self._exited
        self._crash(exc)
        return False

    def _spawn(
        self,
        coroutine: Coroutine[Any, Any, Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._task = self._binding.loop.create_task(self._await(coroutine, on_done, on_error))
        self._task_coroutine = coroutine

    async def _await(
        self,
        coroutine: Coroutine[Any, Any, Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        try:
            result = await coroutine
        except asyncio.CancelledError as cancelled:
            if self._exited:
                return  # killed: the exit is already recorded
            # Cancelled by something other than kill (the handler itself, or
            # the loop shutting down): a failure like any other, so that the
            # actor does not stay stuck on a message that will never finish.
            # The caller gets a plain error: a CancelledError escaping an
            # ``await`` would look like a cancellation of the caller itself.
            self._task = self._task_coroutine = None
            error = RuntimeError(f"{self}: handler task was cancelled")
            error.__cause__ = cancelled
            on_error(error)
            return
        except Exception as exc:
            self._task = self._task_coroutine = None
            if not self._exited:
                on_error(exc)
            return
        self._task = self._task_coroutine = None
        if not self._exited:
            on_done(result)

    # -- dying ------------------------------------------------------------------

    def _begin_stop(self, reason: ExitReason, envelope: Envelope[Any] | None) -> None:
        self.actor_stopped.set()
        self._unregister()
        try:
            result = self.on_stop()
        except Exception as exc:
            logger.exception("%s: on_stop failed", self)
            self._finish(Crashed(exc), envelope)
            return
        if type(result) is CoroutineType:

            def stop_failed(exc: BaseException) -> None:
                logger.error("%s: on_stop failed", self, exc_info=exc)
                self._finish(Crashed(exc), envelope)

            self._spawn(result, lambda _: self._finish(reason, envelope), stop_failed)
            return
        self._finish(reason, envelope)

    def _finish(self, reason: ExitReason, envelope: Envelope[Any] | None) -> None:
        self._exit(reason)
        if envelope is not None and envelope.reply_to is not None:
            envelope.reply_to.set(None)

    def _crash(self, exc: BaseException, *, run_on_failure: bool = True) -> None:
        self.actor_stopped.set()
        self._unregister()
        logger.error("%s crashed", self, exc_info=exc)
        if not run_on_failure:
            self._exit(Crashed(exc))
            return
        try:
            result = self.on_failure(type(exc), exc, exc.__traceback__)
        except Exception:
            logger.exception("%s: on_failure failed", self)
            result = None
        if type(result) is CoroutineType:

            def failure_hook_failed(hook_exc: BaseException) -> None:
                logger.error("%s: on_failure failed", self, exc_info=hook_exc)
                self._exit(Crashed(exc))

            self._spawn(result, lambda _: self._exit(Crashed(exc)), failure_hook_failed)
            return
        self._exit(Crashed(exc))

    def _kill(self, reason: ExitReason) -> None:
        binding = self._binding
        if not binding.on_loop_thread():
            binding.loop.call_soon_threadsafe(self._kill, reason)
            return
        if self._exited:
            return
        task, self._task = self._task, None
        coroutine, self._task_coroutine = self._task_coroutine, None
        if task is not None and not task.done():
            task.cancel()
            if coroutine is not None:
                # A task cancelled before its first step never starts the
                # handler's coroutine: close it then (no "never awaited"
                # warning). Once the task is done, this is a no-op otherwise.
                task.add_done_callback(lambda _: coroutine.close())
        self._exit(reason)

    def _unregister(self) -> None:
        if not self._unregistered:
            self._unregistered = True
            ActorRegistry.unregister(self._actor_ref)

    def _exit(self, reason: ExitReason) -> None:
        """The end: refuse mail, answer what was pending, tell the watchers."""
        if self._exited:
            return
        self._exited = True
        self.actor_stopped.set()
        self._unregister()
        try:
            self._on_exit(reason)
        except Exception:
            logger.exception("%s: exit hook failed", self)
        for envelope in self.actor_inbox.close():
            reject(envelope, self)
        current, self._current = self._current, None
        if current is not None:
            reject(current, self)
        deferred, self._deferred = self._deferred, None
        if deferred:
            for future in deferred:
                reject(Envelope(None, reply_to=future), self)
        self._actor_ref._notify_exit(reason)

    def _on_exit(self, reason: ExitReason) -> None:
        """Extension point run synchronously as the actor exits, whatever the reason.

        Supervisors use it to take their children down with them when they
        are killed.
        """

    # -- replies given later ------------------------------------------------------

    def defer_reply(self) -> pykka.Future[Any] | None:
        """Answer the message being handled later, not with the handler's return value.

        Returns the caller's future (``None`` for a ``tell``); the handler's
        return value is then ignored, and the actor takes its next message
        at once. Give the answer with :meth:`reply` or :meth:`reply_error`,
        from a later handler or a callback on the loop. If the actor exits
        first, the caller gets :class:`pykka.ActorDeadError`, as for mail it
        never handled: a deferred ask never hangs.

        This is how an actor keeps several requests in progress (a
        conversation's sends, committing while it takes the next ones) and
        still answers each one after its work is done.
        """
        envelope = self._current
        if envelope is None:
            msg = "defer_reply() is for the message being handled"
            raise RuntimeError(msg)
        future, envelope.reply_to = envelope.reply_to, None
        if future is not None:
            if self._deferred is None:
                self._deferred = set()
            self._deferred.add(future)
        return future

    def reply(self, future: pykka.Future[Any] | None, value: Any) -> None:
        """Give a deferred reply (see :meth:`defer_reply`)."""
        if future is not None:
            if self._deferred is not None:
                self._deferred.discard(future)
            future.set(value)

    def reply_error(self, future: pykka.Future[Any] | None, exc: BaseException) -> None:
        """Give a deferred reply that is an exception for the caller."""
        if future is not None:
            if self._deferred is not None:
                self._deferred.discard(future)
            future.set_exception((type(exc), exc, exc.__traceback__))

    # -- pykka API ------------------------------------------------------------

    def stop(self) -> None:
        """Stop after the messages already queued (pykka's ``Actor.stop``)."""
        self._actor_ref.tell(pykka.messages._ActorStop())

    def _stop(self) -> None:  # pragma: no cover - stops go through _begin_stop
        self._begin_stop(Normal(), None)


def request_shutdown(ref: pykka.ActorRef[Any]) -> None:
    """Ask the actor behind ``ref`` to stop now, ahead of its queued mail.

    For the runtime's actor kinds the request jumps the queue and the exit
    reason is ``Shutdown``; for any other pykka actor it is a plain ``stop``.

    Raises:
        pykka.ActorDeadError: if the actor is not alive.
    """
    if not ref.is_alive():
        msg = f"{ref} not found"
        raise pykka.ActorDeadError(msg)
    put_first = getattr(ref.actor_inbox, "put_first", None)
    if put_first is None:
        ref.stop(block=False)
        return
    put_first(Envelope(SHUTDOWN))
