"""Exit reasons: how an actor's life ended, as its watchers learn it.

OTP tells a monitor *why* a process died, and a supervisor's restart decision
depends on it: a ``transient`` child is restarted after a crash but not after a
normal exit. pykka only has "stopped", so the runtime adds these values.

``Normal`` and ``Shutdown`` are *normal* exits (OTP's ``normal`` and
``shutdown``); ``Killed`` and ``Crashed`` are *abnormal*.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Crashed",
    "ExitReason",
    "InjectedCrash",
    "Killed",
    "LinkedExit",
    "Normal",
    "Shutdown",
]


@dataclass(frozen=True, slots=True)
class Normal:
    """The actor stopped by itself or through ``ActorRef.stop()``."""

    abnormal = False

    def __str__(self) -> str:
        return "normal"


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The actor was stopped by its supervisor (or the node) in an orderly way."""

    abnormal = False

    def __str__(self) -> str:
        return "shutdown"


@dataclass(frozen=True, slots=True)
class Killed:
    """The actor was stopped without running ``on_stop`` (OTP's ``kill``).

    ``cause`` says who or what killed it, for logs.
    """

    cause: str = "killed"
    abnormal = True

    def __str__(self) -> str:
        return f"killed ({self.cause})"


@dataclass(frozen=True, slots=True)
class Crashed:
    """An unexpected exception ended the actor: in a tell, an ask, or a hook."""

    exception: BaseException
    abnormal = True

    def __str__(self) -> str:
        return f"crashed: {type(self.exception).__name__}: {self.exception}"


ExitReason = Normal | Shutdown | Killed | Crashed
"""Every way an actor's life can end."""


class LinkedExit(Exception):
    """Raised into an actor whose linked peer exited abnormally.

    A linked actor that does not trap exits dies with ``Crashed(LinkedExit)``,
    so the failure travels along links as in OTP.
    """

    def __init__(self, peer: str, reason: ExitReason) -> None:
        super().__init__(f"linked actor {peer} exited: {reason}")
        self.peer = peer
        self.reason = reason


class InjectedCrash(Exception):
    """Raised into an actor by :meth:`~supervisors.Ref.crash`: a crash asked for, not a bug.

    A class of its own so that logs and exit reasons tell an injected fault from a real one.
    """
