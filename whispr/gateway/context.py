"""What every connection of a node's gateway shares."""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.broker import Broker
from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.schedules import Schedules
from whispr.accounts import AccountStore
from whispr.audit import AuditLog
from whispr.auth import TokenVerifier
from whispr.config import Settings
from whispr.gateway.abuse import AbuseDetector
from whispr.gateway.limits import EventLimits
from whispr.gateway.metrics import GatewayMetrics
from whispr.gateway.presence import Presence
from whispr.gateway.sessions import Sessions
from whispr.user_presence import UserPresence

if TYPE_CHECKING:
    from supervisors import Ref

__all__ = ["GatewayContext"]


@dataclass
class GatewayContext:
    """The node's services as the gateway uses them, and its per-node connection state."""

    settings: Settings
    messaging: Messaging
    broker: Broker
    presence: Presence
    #: The per-event rate limits (whispr/gateway/limits.py).
    limits: EventLimits
    verifier: TokenVerifier
    #: Where refused tokens, rights and rates are recorded (whispr/audit/).
    audit: AuditLog
    #: The watch for suspicious activity (whispr/gateway/abuse.py).
    abuse: AbuseDetector
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    #: Asked at connect whether the token's user may connect (the user service); None: all.
    is_user_active: Callable[[str], Awaitable[bool]] | None = None
    #: Live connection actors of this node.
    connections: set[Ref[Any]] = field(default_factory=set)
    #: Open connections per client IP address.
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Set while the node drains: new connections are refused.
    draining: bool = False
    #: Open connections by user, revoked tokens, the server API's orders (sessions.py).
    sessions: Sessions = field(default_factory=Sessions)
    #: Users' presence for contacts (whispr/user_presence.py); None: not kept.
    user_presence: UserPresence | None = None
    #: Contacts and presence settings (whispr/accounts.py); None with no user presence.
    accounts: AccountStore | None = None
    #: Scheduled messages (actors/schedules.py); None: the node has no scheduler.
    schedules: Schedules | None = None

    def scheduling(self) -> Schedules:
        """The scheduled messages' API, or ``unavailable`` on a node without a scheduler."""
        if self.schedules is None:
            raise WhisprError(Reason.UNAVAILABLE, "scheduled messages are not served here")
        return self.schedules
