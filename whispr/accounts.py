"""What the server API and user presence keep in the store, as one port.

``PostgresStore`` and ``SqliteStore`` implement it beside the actors' ``Store`` port (token
revocations: :mod:`whispr.revocations`; contacts and the last-seen privacy setting:
:mod:`whispr.user_presence`). The node hands it, without the store's breaker, to the gateway
and the gRPC server (``StoreHandles.accounts``).
"""

from __future__ import annotations

from typing import Protocol

from whispr.revocations import RevocationStore
from whispr.user_presence import PresenceStore

__all__ = ["AccountStore"]


class AccountStore(RevocationStore, PresenceStore, Protocol):
    """Revocations, contacts and presence settings."""
