"""Small pieces both actor kinds share: the shutdown request and rejections."""

from __future__ import annotations

from typing import Any

import pykka
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

__all__ = ["CrashRequest", "Envelope", "ShutdownRequest", "is_stop", "reject"]


class ShutdownRequest:
    """Stop now, ahead of queued messages, with reason ``Shutdown``.

    What a supervisor sends a child it terminates: OTP delivers the exit
    signal ``shutdown`` out of band, not behind the child's mailbox, so a
    child with a long queue still stops within its shutdown timeout.
    """

    __slots__ = ()


SHUTDOWN = ShutdownRequest()


class CrashRequest:
    """Raise :class:`~supervisors.exits.InjectedCrash` in the handler of this message.

    What :meth:`~supervisors.Ref.crash` sends: a crash on demand, for fault injection. It waits
    its turn in the mailbox like any message, so the actor dies as it would of a bug in the
    handler of its next message: its caller is answered with the error, ``on_failure`` runs,
    and its supervisor sees ``Crashed`` and restarts it per its restart type.
    """

    __slots__ = ("cause",)

    def __init__(self, cause: str) -> None:
        self.cause = cause


def is_stop(message: Any) -> bool:
    """Whether ``message`` asks the actor to stop (pykka's stop or a shutdown)."""
    return isinstance(message, _ActorStop | ShutdownRequest)


def reject(envelope: Envelope[Any], actor: object) -> None:
    """Answer an envelope the actor will never handle.

    A pending ``ask`` gets :class:`pykka.ActorDeadError` at once (never a hang);
    a pending ``stop()`` is answered as done, as pykka does.
    """
    future = envelope.reply_to
    if future is None:
        return
    if is_stop(envelope.message):
        future.set(None)
        return
    error = pykka.ActorDeadError(f"{actor} stopped before handling the message")
    future.set_exception((pykka.ActorDeadError, error, None))
