"""``notification:<id>``: a user's notifications; only its owner may join it.

It has no client events: what is published on the user's notification topic is sent to
the client as is.
"""

from __future__ import annotations

from typing import Any, ClassVar

from whispr.gateway.channels.base import Channel, EventTable

__all__ = ["NotificationChannel"]


class NotificationChannel(Channel):
    """One connection's channel on its own notification topic."""

    kind: ClassVar[str] = "notification"
    table: ClassVar[EventTable[Any]] = EventTable()

    async def join(self, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        self.require_own_topic()
        await self.subscribe(self.topic)
        return {}
