"""Child specifications: supervision as data.

A child spec says how to start a child and what to do when it exits, as in
OTP's ``child_spec()`` map. The supervisor is a generic engine driven by these.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

import pykka

from supervisors.exits import ExitReason

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildType",
    "OnRestart",
    "Restart",
    "StartFunction",
    "Strategy",
]

StartFunction = Callable[[], "pykka.ActorRef[Any] | Awaitable[pykka.ActorRef[Any]]"]
"""Starts the child and returns its ref (``lambda: Worker.start(...)``), or a coroutine doing so."""

OnRestart = Callable[[Hashable, ExitReason], None]
"""Told by a supervisor, with the child's id and exit reason, each time it restarts a child that
exited (OTP's supervisor reports, for metrics). Called on the supervisor's loop; it must be
quick and must not raise (an exception is logged and ignored)."""

ShutdownPolicy = float | Literal["brutal_kill", "infinity"]


class Restart(enum.StrEnum):
    """When a child that exited is started again (OTP's restart values)."""

    PERMANENT = "permanent"
    """Always."""
    TRANSIENT = "transient"
    """Only after an abnormal exit (a crash or a kill)."""
    TEMPORARY = "temporary"
    """Never; the child is forgotten once it exits."""

    def should_restart(self, reason: ExitReason) -> bool:
        """Whether a child with this restart value exiting with ``reason`` is restarted."""
        if self is Restart.PERMANENT:
            return True
        if self is Restart.TRANSIENT:
            return reason.abnormal
        return False


class ChildType(enum.StrEnum):
    """A worker, or a supervisor (which gets ``infinity`` as its default shutdown)."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class Strategy(enum.StrEnum):
    """What else a supervisor restarts when one child is restarted."""

    ONE_FOR_ONE = "one_for_one"
    """Only that child."""
    ONE_FOR_ALL = "one_for_all"
    """All children: the others are terminated (in reverse order) and all restarted."""
    REST_FOR_ONE = "rest_for_one"
    """That child and the ones started after it."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child and how to treat its exits.

    ``shutdown`` is how long a child gets to stop after a shutdown request
    before it is killed (seconds), ``"brutal_kill"`` to kill it at once, or
    ``"infinity"`` to wait as long as it takes (the default for supervisors,
    which stop their own children within their own deadlines).
    """

    id: Hashable
    start: StartFunction
    restart: Restart = Restart.PERMANENT
    shutdown: ShutdownPolicy | None = None
    type: ChildType = ChildType.WORKER

    def __post_init__(self) -> None:
        shutdown = self.shutdown
        if shutdown is None:
            shutdown = "infinity" if self.type is ChildType.SUPERVISOR else 5.0
            object.__setattr__(self, "shutdown", shutdown)
        if isinstance(shutdown, str):
            if shutdown not in ("brutal_kill", "infinity"):
                msg = f"child {self.id!r}: shutdown must be seconds, 'brutal_kill' or 'infinity'"
                raise ValueError(msg)
        elif not shutdown >= 0:
            msg = f"child {self.id!r}: shutdown must not be negative"
            raise ValueError(msg)

    @classmethod
    def worker(
        cls,
        actor_class: builtins.type[pykka.Actor],
        *args: Any,
        id: Hashable | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown: ShutdownPolicy | None = None,
        **kwargs: Any,
    ) -> ChildSpec:
        """A spec starting ``actor_class(*args, **kwargs)``; the id defaults to the class name."""
        return cls(
            id=actor_class.__name__ if id is None else id,
            start=lambda: actor_class.start(*args, **kwargs),
            restart=restart,
            shutdown=shutdown,
        )

    @classmethod
    def supervisor(
        cls,
        supervisor_class: builtins.type[pykka.Actor],
        *args: Any,
        id: Hashable | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown: ShutdownPolicy | None = None,
        **kwargs: Any,
    ) -> ChildSpec:
        """A spec for a child that is itself a supervisor."""
        return cls(
            id=supervisor_class.__name__ if id is None else id,
            start=lambda: supervisor_class.start(*args, **kwargs),
            restart=restart,
            shutdown=shutdown,
            type=ChildType.SUPERVISOR,
        )


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children()``: the id, the live ref (or ``None``), type and restart."""

    id: Hashable
    ref: pykka.ActorRef[Any] | None
    type: ChildType
    restart: Restart


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children()``: specs known, children alive, and how many of each type."""

    specs: int
    active: int
    supervisors: int
    workers: int
