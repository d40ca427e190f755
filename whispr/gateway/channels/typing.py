"""Typing indicators that end on the server: one device's "typing..." in one conversation.

A client says ``typing_start`` while its user types (and again every few seconds while they
go on) and ``typing_stop`` when they stop; members get ``user_typing`` with ``typing`` true or
false. A client that drops, crashes or forgets the stop would leave "typing..." shown on the
others' screens, so the server ends it: a ``typing_start`` not renewed within
``WHISPR_TYPING_TIMEOUT_S``, or a channel that ends while typing (left, disconnected,
removed), publishes ``typing`` false itself. The timer lives with the device's channel on the
node that holds its socket; the event goes through the broker, so members on every node see
it. (A node that dies takes its timers with it; clients should still hide an indicator not
renewed for twice the timeout.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["TypingIndicator"]


def _silent(_typing: bool) -> None:
    """What an ended indicator publishes to: nothing."""


class TypingIndicator:
    """One device's typing state on one conversation; ``publish(typing)`` tells the members."""

    def __init__(self, publish: Callable[[bool], None], timeout_s: float) -> None:
        self._publish = publish
        self.timeout_s = timeout_s
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        """Whether the device is shown typing (started, and not stopped nor expired)."""
        return self._expiry is not None

    def start(self) -> None:
        """``typing_start``: tell the members, and end it unless renewed within the timeout."""
        self._cancel()
        self._expiry = asyncio.get_running_loop().call_later(self.timeout_s, self._expired)
        self._publish(True)

    def stop(self) -> None:
        """``typing_stop``: tell the members (even when not typing: the client says so)."""
        self._cancel()
        self._publish(False)

    def end(self) -> None:
        """The channel ends: if the device was typing, tell the members it stopped.

        Nothing is published after this, and ``publish`` (usually a bound method of the
        channel, which holds this indicator) is let go, so the channel and its indicator are
        freed by reference counting rather than left a cycle for the collector.
        """
        if self._expiry is not None:
            self.stop()
        self._publish = _silent

    def _expired(self) -> None:
        self._expiry = None
        self._publish(False)

    def _cancel(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
