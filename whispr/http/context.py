"""What every request of the HTTP API shares: the node's services, as the API uses them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from actors.messaging import Messaging
from whispr.auth import TokenVerifier
from whispr.config import Settings
from whispr.gateway.limits import EventLimits
from whispr.gateway.server import Gateway
from whispr.gateway.sessions import Sessions
from whispr.grpc.auth import CallerAuth
from whispr.server_api import ServerApi

__all__ = ["HttpContext"]


@dataclass
class HttpContext:
    """The node's services for the API's handlers (one per node, built by its service)."""

    settings: Settings
    messaging: Messaging
    #: Users' tokens, checked as the WebSocket handshake checks them (whispr/auth.py).
    verifier: TokenVerifier
    #: Revoked tokens, kept current from the store and the control topic (the gateway's kind).
    sessions: Sessions
    #: The per-event rate limits of the WebSocket API, counted for the same operations here.
    limits: EventLimits
    #: Backends' service tokens, as gRPC checks them (whispr/grpc/auth.py).
    callers: CallerAuth
    #: The server API's operations (whispr/server_api.py); None when the node keeps no
    #: accounts or user presence (then ``/api/v1/server`` answers ``unavailable``).
    server_api: ServerApi | None = None
    #: Asked whether a token's user may use the API (the user service); None: all.
    is_user_active: Callable[[str], Awaitable[bool]] | None = None
    #: Set while the node drains: requests are refused with 503.
    draining: bool = False
    #: The node's gateway: its port for the web page, its long-poll sessions
    #: (``/socket/longpoll``); None in an app built without one.
    gateway: Gateway | None = None
