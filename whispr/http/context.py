"""What every request of the HTTP API shares: the node's services, as the API uses them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request

from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.schedules import Schedules
from whispr.audit import AuditLog
from whispr.auth import TokenVerifier
from whispr.config import Settings
from whispr.gateway.limits import EventLimits
from whispr.gateway.server import Gateway
from whispr.gateway.sessions import Sessions
from whispr.grpc.auth import CallerAuth
from whispr.server_api import ServerApi

__all__ = ["CONTEXT_STATE", "HttpContext", "context_of"]

#: The key of the app's state under which the API's context is.
CONTEXT_STATE = "whispr_http"


@dataclass
class HttpContext:
    """The node's services for the API's handlers (one per node, built by its service)."""

    settings: Settings
    messaging: Messaging
    #: Users' tokens: the gateway's verifier (whispr/auth.py).
    verifier: TokenVerifier
    #: Revoked tokens: the gateway's list, kept current from the store and the control topic.
    sessions: Sessions
    #: The gateway's per-event rate limits, counted for the same operations here.
    limits: EventLimits
    #: Where refused tokens, rights and rates are recorded: the gateway's (whispr/audit/).
    audit: AuditLog
    #: Backends' service tokens, as gRPC checks them (whispr/grpc/auth.py).
    callers: CallerAuth
    #: The server API's operations (whispr/server_api.py); None when the node keeps no
    #: accounts or user presence (then ``/api/v1/server`` answers ``unavailable``).
    server_api: ServerApi | None = None
    #: Asked whether a token's user may use the API (the user service); None: all.
    is_user_active: Callable[[str], Awaitable[bool]] | None = None
    #: The node's socket gateway: its port for the web page, its long-poll sessions
    #: (``/socket/longpoll``); None in an app built without one.
    sockets: Gateway | None = None
    #: Scheduled messages (actors/schedules.py): the gateway's; None on a node without a
    #: scheduler (then the schedule routes answer ``unavailable``, as the socket's events do).
    schedules: Schedules | None = None

    def scheduling(self) -> Schedules:
        """The scheduled messages' API, or ``unavailable`` on a node without a scheduler."""
        if self.schedules is None:
            raise WhisprError(Reason.UNAVAILABLE, "scheduled messages are not served here")
        return self.schedules


def context_of(request: Request[Any, Any, Any]) -> HttpContext:
    """The context of the app serving ``request``."""
    ctx = request.app.state[CONTEXT_STATE]
    assert isinstance(ctx, HttpContext)
    return ctx
