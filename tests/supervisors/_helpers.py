"""Actors and helpers shared by the supervisors tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from supervisors import AsyncioActor, ChildSpec, Ref, Restart, ThreadActor, request_shutdown

BOUND = 5.0
"""Seconds within which anything a test waits for must have happened."""


class Boom(Exception):
    """The failure tests inject."""


async def eventually(
    predicate: Callable[[], bool], *, timeout: float = BOUND, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` seconds.

    Only for conditions nothing can be awaited for (a thread's progress, say).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.005)


async def replaced(
    newest: Callable[[], Awaitable[Ref[Any] | None]], old: Ref[Any], *, what: str
) -> Ref[Any]:
    """Ask ``newest`` until it answers a ref other than ``old`` (its restart); return that.

    A child's death reaches the test (``wait_exit``) and its supervisor (the monitor's
    notice) separately, in an order the event loop does not promise, so a test that moves
    the supervisor's clock waits for the restart first.
    """
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        ref = await newest()
        if ref is not None and ref is not old:
            return ref
        await asyncio.sleep(0.005)
    raise AssertionError(f"{what} was not restarted within {BOUND} s")


async def within(awaitable: Awaitable[Any], timeout: float = BOUND) -> Any:
    """Await ``awaitable``, failing the test (TimeoutError) if it takes longer than ``timeout``."""
    return await asyncio.wait_for(awaitable, timeout)


async def yield_loop(turns: int = 20) -> None:
    """Give every ready callback a few turns: to show something did *not* happen."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Echo(AsyncioActor):
    """Answers each message with itself."""

    def on_receive(self, message: Any) -> Any:
        return message


class Worker(AsyncioActor):
    """A supervised worker that logs its life into a shared list.

    Messages: ``"ping"`` answers the name, ``"crash"`` raises :class:`Boom`,
    ``"exit"`` stops the actor normally (it stops itself), ``"urn"`` answers
    the actor's urn.
    """

    def __init__(self, name: str, log: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.name = name
        self.log = log if log is not None else []

    def on_start(self) -> None:
        self.log.append(("start", self.name))

    def on_stop(self) -> None:
        self.log.append(("stop", self.name))

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return self.name
        if message == "crash":
            raise Boom(self.name)
        if message == "exit":
            self.stop()
            return None
        if message == "urn":
            return self.actor_urn
        return super().on_receive(message)


class HangingStop(AsyncioActor):
    """An actor whose ``on_stop`` never finishes unless cancelled."""

    def __init__(self, log: list[tuple[str, str]], name: str = "hang") -> None:
        super().__init__()
        self.log = log
        self.name = name

    def on_start(self) -> None:
        self.log.append(("start", self.name))

    async def on_stop(self) -> None:
        self.log.append(("stopping", self.name))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append(("cancelled", self.name))
            raise


class BlockingThreadWorker(ThreadActor):
    """A thread actor: ``"block"`` blocks its thread until ``release`` is set."""

    def __init__(self, name: str, log: list[tuple[str, str]], release: threading.Event) -> None:
        super().__init__()
        self.name = name
        self.log = log
        self.release = release
        self.entered = threading.Event()

    def on_start(self) -> None:
        self.log.append(("start", self.name))

    def on_stop(self) -> None:
        self.log.append(("stop", self.name))

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return self.name
        if message == "crash":
            raise Boom(self.name)
        if message == "block":
            self.entered.set()
            self.release.wait(BOUND * 2)
            return "unblocked"
        return None


def worker_spec(
    name: str,
    log: list[tuple[str, str]],
    restart: Restart = Restart.PERMANENT,
    shutdown: Any = None,
) -> ChildSpec:
    return ChildSpec(
        id=name,
        start=lambda: Worker.start(name, log),
        restart=restart,
        shutdown=shutdown,
    )


async def exit_child(ref: Ref[Any], how: str) -> None:
    """End a child's life the way ``how`` says and wait until it is dead."""
    if how == "normal":
        ref.tell("exit")
    elif how == "shutdown":
        request_shutdown(ref)
    elif how == "crash":
        ref.tell("crash")
    elif how == "kill":
        ref.kill()
    else:  # pragma: no cover
        raise ValueError(how)
    await within(ref.wait_exit())
