"""The ``Broker`` port: live events between the nodes that serve one user base.

Conversation actors publish every event on a topic; each node delivers what
it receives to its local subscribers (connection actors). The broker carries
live traffic only: the store is the source of truth, and a client that missed
events (a node or Redis went away) catches up from the store by sequence
number. So a publish is fire-and-forget and never blocks an actor.

Ordering: events published by one node on one topic arrive in publish order
on every node (Redis pub/sub keeps per-connection order; the in-process
broker is synchronous).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Broker", "Handler", "Subscription"]

Handler = Callable[[str, bytes], None]
"""Called on the event loop with ``(topic, payload)`` for each event; must not block."""


class Subscription(Protocol):
    """One handler's interest in one topic."""

    def cancel(self) -> None:
        """Stop delivering to the handler (idempotent)."""


class Broker(Protocol):
    """Publish/subscribe across nodes, with local delivery on each node."""

    node_id: str

    async def open(self) -> None:
        """Connect; must be called before use."""

    async def close(self) -> None:
        """Disconnect and stop background work."""

    async def ping(self) -> bool:
        """Whether the broker can carry traffic between nodes now (for readiness)."""

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver to this node's subscribers now and to other nodes soon; never blocks."""

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        """Start delivering ``topic`` to ``handler``.

        Returns once events published afterwards by any node are sure to be
        delivered, so that a subscribe followed by a read from the store
        leaves no gap.
        """

    async def flush(self) -> None:
        """Wait until publishes made so far have been handed to the other nodes."""

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the broker has its connection back after losing it.

        Events published meanwhile, by any node, were lost to this one: whoever relies on
        them reads the store again (the conversation streams check their positions).
        """
