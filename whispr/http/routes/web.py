"""The web client: a static chat page at ``/app/`` (``/`` leads there) and its settings.

The page (``whispr/http/static/``: HTML, CSS and a plain ES module, no build step) uses the
phoenix.js client vendored beside it at a pinned version (``static/vendor/phoenix/VERSION``),
so nothing is fetched from the internet. It connects its WebSocket to the gateway's port on
the same host, and falls back to the long-poll transport on this port when the WebSocket
cannot open (docs/http.md, "Web client").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from whispr.http.context import HttpContext

__all__ = ["STATIC_DIR", "WebConfig", "router"]

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
APP_PATH: Final = "/app"


class WebConfig(msgspec.Struct, kw_only=True):
    """What the page needs to know of the node: where its WebSocket is."""

    #: The gateway's port (the page's host, this port, ``/socket/websocket``); None: the
    #: page's own origin (behind a proxy that routes ``/socket/websocket``).
    websocket_port: int | None
    #: The long-poll endpoint on this port.
    longpoll_path: str = "/socket/longpoll"


@get("/", include_in_schema=False)
async def home() -> Redirect:
    """The page lives under ``/app/``."""
    return Redirect(f"{APP_PATH}/")


@get(f"{APP_PATH}/config.json", include_in_schema=False, cache_control=None)
async def config(
    request: Request[Any, Any, Any], ctx: NamedDependency[HttpContext]
) -> Response[WebConfig]:
    """The page's settings (read by ``app.js`` at sign-in).

    Behind a proxy (the request says it was forwarded), the page opens its WebSocket on its
    own origin, where the proxy sends ``/socket/websocket`` to the gateways (as
    deploy/compose/nginx.conf and k8s/ingress.yaml do); else on the gateway's port.
    """
    gateway = ctx.sockets
    forwarded = "x-forwarded-for" in request.headers or "forwarded" in request.headers
    port = None
    if gateway is not None and gateway.server is not None and not forwarded:
        port = gateway.port
    return Response(WebConfig(websocket_port=port), headers={"cache-control": "no-store"})


router = Router(
    "/",
    route_handlers=[
        home,
        config,
        create_static_files_router(
            APP_PATH, directories=[STATIC_DIR], html_mode=True, include_in_schema=False
        ),
    ],
    include_in_schema=False,
)
