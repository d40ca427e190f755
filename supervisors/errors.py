"""Errors a supervisor's API gives back to its callers (errors as values)."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = [
    "AlreadyRegistered",
    "ChildExists",
    "ChildNotFound",
    "MaxChildrenReached",
    "RestartIntensityExceeded",
    "StartChildError",
    "SupervisorError",
]


class SupervisorError(Exception):
    """Base of the errors a supervisor returns to a caller without crashing."""


class StartChildError(SupervisorError):
    """A child's start function failed or its ``on_start`` raised.

    The original exception is the ``__cause__``.
    """

    def __init__(self, child_id: Hashable, reason: object) -> None:
        super().__init__(f"child {child_id!r} failed to start: {reason}")
        self.child_id = child_id


class ChildExists(SupervisorError):
    """``start_child`` with an id the supervisor already has."""

    def __init__(self, child_id: Hashable) -> None:
        super().__init__(f"child {child_id!r} already exists")
        self.child_id = child_id


class ChildNotFound(SupervisorError):
    """No child with that id (or ref)."""

    def __init__(self, child_id: object) -> None:
        super().__init__(f"no child {child_id!r}")
        self.child_id = child_id


class MaxChildrenReached(SupervisorError):
    """A dynamic supervisor already runs ``max_children`` children."""

    def __init__(self, max_children: int) -> None:
        super().__init__(f"max_children ({max_children}) reached")
        self.max_children = max_children


class RestartIntensityExceeded(Exception):
    """More than ``max_restarts`` restarts within ``max_seconds``: the supervisor gives up.

    It is not a ``SupervisorError``: it crashes the supervisor, which is how
    the failure escalates to the supervisor's own parent.
    """

    def __init__(self, supervisor: str, max_restarts: int, max_seconds: float) -> None:
        super().__init__(
            f"{supervisor}: more than {max_restarts} restarts in {max_seconds} s; shutting down"
        )


class AlreadyRegistered(SupervisorError):
    """A registry name is taken by a live actor."""

    def __init__(self, name: Hashable, holder: object) -> None:
        super().__init__(f"name {name!r} is already registered to {holder}")
        self.name = name
        self.holder = holder
