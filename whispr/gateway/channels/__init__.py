"""The channel kinds of the WebSocket API, one module each (Phoenix's channel modules).

:data:`CHANNELS` maps a topic's prefix to its kind; a connection routes each join to the
kind's class and each push to the joined instance. ``docs/protocol.md`` documents every
kind's events from the payload structs defined in its module.
"""

from __future__ import annotations

from typing import Final

from whispr.gateway.channels import admin as _admin  # noqa: F401  (its events)
from whispr.gateway.channels import scheduled as _scheduled  # noqa: F401  (its events)
from whispr.gateway.channels.base import Channel, ChannelHost
from whispr.gateway.channels.conversation import ConversationChannel
from whispr.gateway.channels.notification import NotificationChannel
from whispr.gateway.channels.user import UserChannel

__all__ = ["CHANNELS", "TOPIC_PREFIXES", "Channel", "ChannelHost"]

#: Topic prefix (before the colon) -> the channel kind serving it.
CHANNELS: Final[dict[str, type[Channel]]] = {
    kind.kind: kind for kind in (UserChannel, ConversationChannel, NotificationChannel)
}
#: The topics a client may join, as the protocol core checks them.
TOPIC_PREFIXES: Final = tuple(f"{prefix}:" for prefix in CHANNELS)
