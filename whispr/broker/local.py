"""Local fan-out, and the in-process broker for a single node."""

from __future__ import annotations

import logging
from collections.abc import Callable

from actors.broker import Handler

__all__ = ["LocalFanout", "MemoryBroker"]

logger = logging.getLogger("whispr.broker")


class _LocalSubscription:
    __slots__ = ("_fanout", "_handler", "_topic")

    def __init__(self, fanout: LocalFanout, topic: str, handler: Handler) -> None:
        self._fanout = fanout
        self._topic = topic
        self._handler = handler

    def cancel(self) -> None:
        self._fanout.remove(self._topic, self._handler)


class LocalFanout:
    """Topic -> handlers on this node. Both brokers deliver through one of these."""

    def __init__(self, on_empty: Callable[[str], None] | None = None) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._on_empty = on_empty

    def __contains__(self, topic: str) -> bool:
        return topic in self._handlers

    def topics(self) -> list[str]:
        """Topics with at least one local handler."""
        return list(self._handlers)

    def add(self, topic: str, handler: Handler) -> tuple[_LocalSubscription, bool]:
        """Add a handler; also say whether it is the topic's first."""
        handlers = self._handlers.get(topic)
        first = handlers is None
        if handlers is None:
            handlers = self._handlers[topic] = []
        handlers.append(handler)
        return _LocalSubscription(self, topic, handler), first

    def remove(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.get(topic)
        if handlers is None:
            return
        try:
            handlers.remove(handler)
        except ValueError:
            return
        if not handlers:
            del self._handlers[topic]
            if self._on_empty is not None:
                self._on_empty(topic)

    def deliver(self, topic: str, payload: bytes) -> int:
        """Call every handler of ``topic``; a failing handler does not stop the others."""
        handlers = self._handlers.get(topic)
        if not handlers:
            return 0
        for handler in tuple(handlers):
            try:
                handler(topic, payload)
            except Exception:
                logger.exception("subscriber of %s failed", topic)
        return len(handlers)


class MemoryBroker:
    """The embedded default: delivery within this process only."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._fanout = LocalFanout()

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def ping(self) -> bool:
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        self._fanout.deliver(topic, payload)

    async def subscribe(self, topic: str, handler: Handler) -> _LocalSubscription:
        subscription, _ = self._fanout.add(topic, handler)
        return subscription

    async def flush(self) -> None:
        """Publishes are delivered synchronously."""

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Never called: there is no connection to lose."""
