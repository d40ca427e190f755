"""``ThreadActor``: a ``pykka.ThreadingActor`` that supervisors can watch.

For the rare actor that must block (a CPU-heavy export, a blocking library),
an OS thread is still the right tool. This class is a real
``pykka.ThreadingActor`` with the runtime's additions: a :class:`Ref` with
monitors and links, exit reasons, crash on unexpected errors in ``ask`` as
well as ``tell``, ``expected_errors``, and shutdown requests that jump the
queue. Its exit callbacks are delivered on the runtime's event loop, so a
supervisor on the loop watches it like any other child.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
from pykka import ActorRegistry

from supervisors._envelopes import CrashRequest, Envelope, ShutdownRequest, is_stop, reject
from supervisors._loop import current_binding
from supervisors.exits import Crashed, ExitReason, InjectedCrash, Normal, Shutdown
from supervisors.future import NotifyingThreadingFuture
from supervisors.ref import Ref

if TYPE_CHECKING:
    from typing import Self

__all__ = ["ThreadActor"]

logger = logging.getLogger("supervisors")


class _Wake:
    """Unblocks a killed actor's thread waiting on its queue."""

    __slots__ = ()


class _ThreadInbox(queue.Queue[Envelope[Any]]):
    def put_first(self, envelope: Envelope[Any]) -> None:
        """Queue ``envelope`` ahead of everything else."""
        with self.not_empty:
            self.queue.appendleft(envelope)
            self.unfinished_tasks += 1
            self.not_empty.notify()

    def drain(self) -> list[Envelope[Any]]:
        with self.mutex:
            items = list(self.queue)
            self.queue.clear()
            return items


class ThreadActor(pykka.ThreadingActor):
    """A pykka threading actor with exit reasons, monitors and links.

    Start it from the loop's thread or after :func:`supervisors.bind_loop`.
    ``kill()`` cannot interrupt a handler that is running: the actor is dead
    to everyone at once and its thread ends when the handler returns.
    """

    expected_errors: ClassVar[tuple[type[Exception], ...]] = ()
    trap_exits: ClassVar[bool] = False
    use_daemon_thread = True

    actor_inbox: _ThreadInbox
    _actor_ref: Ref[Any]

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        binding = current_binding()
        self._binding = binding
        self.actor_urn = uuid.uuid4().urn
        self.actor_inbox = _ThreadInbox()
        self.actor_stopped = threading.Event()
        self._actor_ref = Ref(self, binding)
        self._exit_lock = threading.Lock()
        self._exited = False
        self._current: Envelope[Any] | None = None

    @property
    def actor_ref(self) -> Ref[Self]:
        """The actor's :class:`supervisors.Ref`."""
        return self._actor_ref

    if TYPE_CHECKING:

        @classmethod
        def start(cls, *args: Any, **kwargs: Any) -> Ref[Self]: ...

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return NotifyingThreadingFuture()

    def _actor_loop(self) -> None:
        try:
            self.on_start()
        except Exception as exc:
            logger.error("%s crashed in on_start", self, exc_info=exc)
            self._exit(Crashed(exc))
            return
        try:
            self._binding.loop.call_soon_threadsafe(self._actor_ref._mark_started)
        except RuntimeError:  # the loop is closed: the node is gone
            self._exit(Normal())
            return
        while not self.actor_stopped.is_set():
            envelope = self.actor_inbox.get()
            if self.actor_stopped.is_set():
                reject(envelope, self)
                return
            message = envelope.message
            if isinstance(message, _Wake):
                continue
            if is_stop(message):
                self._stop_now(Shutdown() if isinstance(message, ShutdownRequest) else Normal())
                if envelope.reply_to is not None:
                    envelope.reply_to.set(None)
                return
            self._current = envelope
            try:
                if type(message) is CrashRequest:
                    raise InjectedCrash(message.cause)
                result = self._handle_receive(message)
            except Exception as exc:
                self._current = None
                _settle(envelope, exception=exc)
                if isinstance(exc, self.expected_errors):
                    continue
                self._crash(exc)
                return
            self._current = None
            _settle(envelope, value=result)

    def _stop_now(self, reason: ExitReason) -> None:
        self.actor_stopped.set()
        ActorRegistry.unregister(self._actor_ref)
        try:
            self.on_stop()
        except Exception as exc:
            logger.exception("%s: on_stop failed", self)
            reason = Crashed(exc)
        self._exit(reason)

    def _crash(self, exc: Exception) -> None:
        self.actor_stopped.set()
        logger.error("%s crashed", self, exc_info=exc)
        try:
            self.on_failure(type(exc), exc, exc.__traceback__)
        except Exception:
            logger.exception("%s: on_failure failed", self)
        self._exit(Crashed(exc))

    def _kill(self, reason: ExitReason) -> None:
        self._exit(reason)
        self.actor_inbox.put(Envelope(_Wake()))

    def _exit(self, reason: ExitReason) -> None:
        with self._exit_lock:
            if self._exited:
                return
            self._exited = True
        self.actor_stopped.set()
        ActorRegistry.unregister(self._actor_ref)
        pending = self.actor_inbox.drain()
        current = self._current
        if current is not None:
            pending.append(current)
        for envelope in pending:
            with contextlib.suppress(queue.Full):  # answered by the handler meanwhile
                reject(envelope, self)
        try:
            self._binding.loop.call_soon_threadsafe(self._actor_ref._notify_exit, reason)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            logger.debug("%s exited after its event loop closed", self)


def _settle(
    envelope: Envelope[Any], *, value: Any = None, exception: BaseException | None = None
) -> None:
    """Answer an ask once; a kill may have answered it first."""
    future = envelope.reply_to
    if future is None:
        return
    try:
        if exception is not None:
            future.set_exception((type(exception), exception, exception.__traceback__))
        else:
            future.set(value)
    except queue.Full:
        pass
