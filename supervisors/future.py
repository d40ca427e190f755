"""Futures for actors on an asyncio loop, and awaiting any pykka future.

``AsyncioFuture`` is what ``ask()`` returns for an :class:`AsyncioActor`. It is
a :class:`pykka.Future`, so ``get(timeout=...)`` works from any other thread,
and it is awaitable without blocking the loop. It is completed on the loop's
thread only (the actor's handlers run there), which keeps it lock-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import pykka

from supervisors._loop import LoopBinding, current_binding

__all__ = ["AsyncioFuture", "NotifyingThreadingFuture", "wait_for_future"]

T = TypeVar("T")

#: What ``sys.exc_info()`` returns, as pykka's ``set_exception`` takes it.
OptExcInfo: TypeAlias = tuple[
    type[BaseException] | None, BaseException | None, TracebackType | None
]
#: A future's get hook (``pykka.Future.set_get_hook``): its value, given a timeout.
GetHook: TypeAlias = Callable[[float | None], T]

_PENDING: Any = object()


class AsyncioFuture(pykka.Future[T]):
    """A pykka future completed on the runtime's event loop.

    Await it from the loop (``await ref.ask(msg, block=False)``); call ``get()``
    from other threads. A blocking ``get()`` on the loop's own thread before
    the value is there would deadlock the loop, so it raises instead.

    The combinators inherited from pykka (``map``, ``filter``, ``join``,
    ``reduce``) block in ``get()`` and are meant for threads; on the loop,
    await the future and use plain code.
    """

    __slots__ = ("_binding", "_exception", "_hooked", "_value", "_waiters")

    def __init__(self, binding: LoopBinding | None = None) -> None:
        super().__init__()
        self._binding = binding if binding is not None else current_binding()
        #: Made by map/filter/join/reduce or ``stop()``: its value comes from its get hook.
        self._hooked = False
        self._value: Any = _PENDING
        self._exception: BaseException | None = None
        # One asyncio future per awaiting coroutine: cancelling one awaiter
        # (``asyncio.wait_for`` timing out) must not cancel the others.
        self._waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        state = "pending" if not self.done() else "done"
        return f"<AsyncioFuture {state}>"

    def done(self) -> bool:
        """Whether a value or an exception has been set."""
        return self._value is not _PENDING or self._exception is not None

    def set_get_hook(self, func: GetHook[T]) -> None:
        self._hooked = True
        super().set_get_hook(func)

    def get(self, *, timeout: float | None = None) -> T:
        if self._hooked:
            return super().get(timeout=timeout)
        if not self.done():
            if self._binding.on_loop_thread():
                msg = (
                    "blocking get() on the event loop's thread would deadlock; "
                    "await the future instead"
                )
                raise RuntimeError(msg)
            self._wait_from_thread(timeout)
        return self._result()

    def _wait_from_thread(self, timeout: float | None) -> None:
        async def wait() -> None:
            await self

        concurrent = asyncio.run_coroutine_threadsafe(wait(), self._binding.loop)
        try:
            concurrent.result(timeout=timeout)
        except TimeoutError:
            concurrent.cancel()
            msg = f"{timeout} seconds"
            raise pykka.Timeout(msg) from None

    def _result(self) -> T:
        if self._exception is not None:
            raise self._exception
        value: T = self._value
        return value

    def set(self, value: T | None = None) -> None:
        if self.done():
            return
        self._value = value
        self._wake()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if self.done():
            return
        if exc_info is None:
            exc_info = sys.exc_info()
        exc_type, exc_value, traceback = exc_info
        if exc_value is None:
            assert exc_type is not None
            exc_value = exc_type()
        if traceback is not None and exc_value.__traceback__ is not traceback:
            exc_value = exc_value.with_traceback(traceback)
        self._exception = exc_value
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, None
        if waiters is not None:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def __await__(self) -> Generator[Any, None, T]:
        if self._hooked:
            msg = "a future made by map/filter/join/reduce cannot be awaited; await its source"
            raise TypeError(msg)
        if not self.done():
            waiter: asyncio.Future[None] = self._binding.loop.create_future()
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters = [w for w in self._waiters if not w.done()]
                self._waiters.append(waiter)
            yield from waiter.__await__()
        return self._result()

    __iter__ = __await__


class NotifyingThreadingFuture(pykka.ThreadingFuture[T]):
    """A ``pykka.ThreadingFuture`` that can also wake a coroutine when it is set.

    What a :class:`supervisors.ThreadActor`'s ``ask`` returns, so that
    :func:`wait_for_future` awaits it without parking a worker thread in
    ``get()`` for each pending ask: the default executor has a handful of
    threads, and a few asks to blocked actors would otherwise stall every
    ``asyncio.to_thread`` in the process.
    """

    def __init__(self) -> None:
        super().__init__()
        self._notify_lock = threading.Lock()
        self._settled = False
        self._callbacks: list[Callable[[], None]] = []
        #: Made by map/filter/join/reduce or ``stop()``: its value comes from its get hook.
        self._hooked = False

    def set_get_hook(self, func: GetHook[T]) -> None:
        super().set_get_hook(func)  # raises queue.Full if already set
        self._hooked = True

    def set(self, value: T | None = None) -> None:
        super().set(value)  # raises queue.Full if already set
        self._settled_now()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        super().set_exception(exc_info)
        self._settled_now()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the future is set: at once if it is already.

        It may run on any thread (the one that sets the future).
        """
        with self._notify_lock:
            if not self._settled:
                self._callbacks.append(callback)
                return
        callback()

    def _settled_now(self) -> None:
        with self._notify_lock:
            self._settled = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


async def wait_for_future(future: pykka.Future[T], timeout: float | None = None) -> T:
    """Await any pykka future without blocking the loop.

    An :class:`AsyncioFuture` or a ``ThreadActor``'s future is awaited
    directly; any other pykka future (a plain ``pykka.ThreadingActor``'s) is
    waited for on a worker thread.

    Raises:
        pykka.Timeout: if ``timeout`` passes first.
    """
    if isinstance(future, AsyncioFuture) and not future._hooked:
        awaitable: Awaitable[T] = future
    elif isinstance(future, NotifyingThreadingFuture) and not future._hooked:
        awaitable = _settled(future)
    else:  # any other kind, or made by map/filter/join/reduce or stop(): get() on a thread
        return await asyncio.to_thread(future.get, timeout=timeout)
    # asyncio.timeout rather than asyncio.wait_for, which on Python 3.11
    # can swallow the caller's cancellation when the answer arrives with it.
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if not scope.expired():
            raise  # the actor's own answer was a TimeoutError
        msg = f"{timeout} seconds"
        raise pykka.Timeout(msg) from None


async def _settled(future: NotifyingThreadingFuture[T]) -> T:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake_on_loop() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def wake() -> None:
        # Runs on the thread that set the future; the loop may be gone by then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake_on_loop)

    future.add_done_callback(wake)
    await waiter
    value: T = future.get(timeout=0)  # set by now: returns or raises at once
    return value
