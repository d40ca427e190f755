"""Running a supervision tree as a program: start it, stop it on a signal.

``run_until_signalled`` is what a node's ``main`` awaits: it starts the root
supervisor, waits for SIGTERM or SIGINT (or the root's own exit), then stops
the tree in order within a deadline, killing whatever is left when the
deadline passes. Kubernetes sends SIGTERM and waits
``terminationGracePeriodSeconds`` before SIGKILL, so the deadline should be
below that.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pykka

from supervisors.actor import request_shutdown
from supervisors.exits import ExitReason, Killed
from supervisors.ref import Ref

__all__ = ["run_until_signalled", "stop_tree"]

logger = logging.getLogger("supervisors")


async def stop_tree(root: Ref[Any], deadline: float) -> ExitReason:
    """Shut ``root`` down in order (children in reverse), killing it at ``deadline`` seconds."""
    if root.exit_reason is not None:
        return root.exit_reason
    # Already stopping (its on_stop runs) raises: then wait for it, within the deadline.
    with contextlib.suppress(pykka.ActorDeadError):
        request_shutdown(root)
    try:
        async with asyncio.timeout(deadline):
            return await root.wait_exit()
    except TimeoutError:
        logger.error("tree did not stop within %s s; killing it", deadline)
        root.kill("shutdown deadline")
        reason = await root.wait_exit()
        return reason if isinstance(reason, Killed) else Killed("shutdown deadline")


async def run_until_signalled(
    start_root: Callable[[], Ref[Any] | Awaitable[Ref[Any]]],
    *,
    shutdown_deadline: float = 25.0,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    on_started: Callable[[Ref[Any]], None] | None = None,
) -> ExitReason:
    """Start the tree, run until a signal or the root's exit, then stop it.

    Returns the root's exit reason: ``Shutdown`` after a clean stop on a
    signal, ``Crashed`` when the tree gave up on its own (the caller should
    then exit non-zero so the orchestrator restarts the node).
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop_requested.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            logger.debug("cannot handle %s here", sig.name)
    try:
        started = start_root()
        root = await started if inspect.isawaitable(started) else started
        await root.started()
        if on_started is not None:
            on_started(root)
        stop_wait = asyncio.ensure_future(stop_requested.wait())
        exit_wait = asyncio.ensure_future(root.wait_exit())
        await asyncio.wait({stop_wait, exit_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        exit_wait.cancel()
        if root.exit_reason is not None:
            logger.error("supervision tree exited: %s", root.exit_reason)
            return root.exit_reason
        logger.info("stopping the supervision tree (deadline %s s)", shutdown_deadline)
        return await stop_tree(root, shutdown_deadline)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
