"""Which asyncio event loop the actors run on.

An actor captures the loop that is running when it is created. Code on another
thread (a ``ThreadActor``, a test's helper thread) can still start actors and
talk to them: it uses the loop that was last seen running, bound here.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["LoopBinding", "bind_loop", "current_binding"]


class LoopBinding:
    """An event loop together with the identity of the thread that runs it."""

    __slots__ = ("loop", "thread_id")

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        self.loop = loop
        self.thread_id = thread_id

    def on_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's own thread."""
        return threading.get_ident() == self.thread_id


_bound: LoopBinding | None = None


def bind_loop(loop: asyncio.AbstractEventLoop, thread_id: int | None = None) -> LoopBinding:
    """Make ``loop`` the runtime's loop for callers on other threads."""
    global _bound
    _bound = LoopBinding(loop, threading.get_ident() if thread_id is None else thread_id)
    return _bound


def current_binding() -> LoopBinding:
    """The loop an actor created now should run on.

    On a thread running an event loop that loop is used (and bound for other
    threads); elsewhere, the last bound loop, if it still runs.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        bound = _bound
        if bound is None or bound.loop.is_closed():
            msg = (
                "no event loop for actors: start them from a coroutine on the node's "
                "loop, or call supervisors.bind_loop(loop) first"
            )
            raise RuntimeError(msg) from None
        return bound
    bound = _bound
    if bound is not None and bound.loop is loop:
        return bound
    return bind_loop(loop)
