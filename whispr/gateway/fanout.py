"""Broker events as Phoenix broadcast frames, encoded once per event per node.

A broker event reaches every subscribed connection of the node as the same
:class:`~actors.events.BrokerEvent` object (the local fan-out hands each handler the same
``bytes``, and :func:`actors.events.decode_event` caches on them), so a one-entry cache keyed
on that object's identity turns N encodings into one.
"""

from __future__ import annotations

import msgspec

from actors.events import BrokerEvent
from whispr.protocol import frames

__all__ = ["broadcast_frame"]

_last: tuple[BrokerEvent | None, str, bytes] = (None, "", b"")


def broadcast_frame(topic: str, event: BrokerEvent) -> bytes:
    """``event`` as a Phoenix broadcast on ``topic`` (cached for the same event and topic)."""
    global _last
    cached_event, cached_topic, cached_frame = _last
    if cached_event is event and cached_topic == topic:
        return cached_frame
    frame = frames.encode_broadcast(topic, event.name, msgspec.Raw(event.payload))
    _last = (event, topic, frame)
    return frame
