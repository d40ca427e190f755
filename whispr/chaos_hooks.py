"""Test-only fault hooks: a signal crashes one random actor of a running node.

The chaos run (:mod:`whispr.bench.chaos`) runs nodes as separate processes and wants to crash
actors inside them at random times, as bugs would: a conversation actor (its supervisor
restarts it, transient; callers of the crashed one get a retryable error) or a connection
actor (temporary: its socket is closed with 1011 and the client reconnects). A signal is the
hook because it needs no listening surface at all: only who may already signal the process
can use it.

* ``SIGUSR1``: crash one random conversation actor;
* ``SIGUSR2``: crash one random connection actor.

Both go through the actor runtime (:meth:`supervisors.Ref.crash`), so what follows is exactly
what a crash does, supervision included. Only with ``WHISPR_CHAOS_HOOKS=1`` (which
:mod:`whispr.config` accepts only on a loopback ``WHISPR_HOST``); otherwise each signal is
logged and ignored, and nothing is crashed.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable
from typing import Any, Final

import pykka
import structlog

from supervisors import Ref, Registry

__all__ = ["SIGNALS", "crash_one", "install"]

log = structlog.get_logger("whispr.chaos_hooks")

#: Which signal crashes an actor under which dynamic supervisor of the node.
SIGNALS: Final = {signal.SIGUSR1: "conversations", signal.SIGUSR2: "connections"}


async def crash_one(registry: Registry, supervisor: str, rng: random.Random) -> str | None:
    """Crash one random live child of the dynamic supervisor named ``supervisor``.

    Returns the crashed child's id (for the log), or None when there was none to crash.
    """
    ref = registry.whereis(supervisor)
    if ref is None:
        return None
    try:
        children = await ref.proxy().which_children()
    except pykka.ActorDeadError:  # the supervisor is being restarted
        return None
    live = [
        (child.id, child.ref)
        for child in children
        if isinstance(child.ref, Ref) and child.ref.is_alive()
    ]
    if not live:
        return None
    name, target = rng.choice(live)
    try:
        target.crash("chaos hook")
    except pykka.ActorDeadError:
        return None
    return str(name)


def install(
    enabled: bool, registry: Registry, loop: asyncio.AbstractEventLoop
) -> Callable[[], None]:
    """Handle :data:`SIGNALS` on ``loop``; returns what removes the handlers again.

    Disabled, the handlers only log that the signal was ignored: a stray ``SIGUSR1`` neither
    crashes an actor nor, as its default action would, the node.
    """
    rng = random.Random()
    tasks: set[asyncio.Task[Any]] = set()

    async def crash(signame: str, supervisor: str) -> None:
        crashed = await crash_one(registry, supervisor, rng)
        log.warning("chaos hook", signal=signame, supervisor=supervisor, crashed=crashed)

    def handler(sig: signal.Signals, supervisor: str) -> None:
        if not enabled:
            log.warning("signal ignored: WHISPR_CHAOS_HOOKS is off", signal=sig.name)
            return
        task = loop.create_task(crash(sig.name, supervisor))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for sig, supervisor in SIGNALS.items():
        loop.add_signal_handler(sig, handler, sig, supervisor)

    def remove() -> None:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)

    return remove
