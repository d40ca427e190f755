"""``/socket/longpoll``: Phoenix's long-poll transport, for clients whose WebSocket cannot open.

The wire and the sessions are the gateway's (:mod:`whispr.gateway.longpoll`): this module
only reads a request (its tokens, its body, the client's address) and writes the answer as
phoenix.js expects it, JSON with a ``status``, never cached. Cross-origin requests follow
the app's CORS policy (any origin, or ``WHISPR_ALLOWED_ORIGINS`` when set: nothing rides in
cookies, every request carries its own tokens), and a browser request from an origin not
allowed is refused (403), as the WebSocket's handshake refuses it.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency

from whispr.gateway.longpoll import Reply, bearer_token, session_token
from whispr.http.context import HttpContext

__all__ = ["PATH", "router"]

PATH: Final = "/socket/longpoll"

_HEADERS: Final = {"cache-control": "no-store"}
#: Where phoenix.js puts the tokens besides the query (its ``authToken``; newer clients'
#: session token).
_AUTH_HEADER: Final = "x-phoenix-authtoken"
_SESSION_HEADER: Final = "x-phoenix-longpoll-token"
_UNAVAILABLE: Final = b'{"status":500,"reason":"unavailable","message":"no gateway on this node"}'
_ORIGIN_REFUSED: Final = b'{"status":403,"reason":"forbidden","message":"origin not allowed"}'


def _answer(reply: Reply) -> Response[bytes]:
    return Response(
        reply.body(), status_code=reply.http, media_type="application/json", headers=_HEADERS
    )


def _unavailable() -> Response[bytes]:
    return Response(_UNAVAILABLE, status_code=503, media_type="application/json", headers=_HEADERS)


def _refused(request: Request[Any, Any, Any], ctx: HttpContext) -> Response[bytes] | None:
    """403 for a browser's request from an origin not allowed (as the WebSocket's handshake
    refuses it); requests without ``Origin`` (not from a browser page) pass, as there."""
    allowed = ctx.settings.allowed_origins
    origin = request.headers.get("origin")
    if not allowed or origin is None or origin in allowed:
        return None
    return Response(
        _ORIGIN_REFUSED, status_code=403, media_type="application/json", headers=_HEADERS
    )


def _session(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get(_SESSION_HEADER)
    return header or session_token(request.query_params.getall("token", []))


@get(PATH, include_in_schema=False)
async def poll(
    request: Request[Any, Any, Any], ctx: NamedDependency[HttpContext]
) -> Response[bytes]:
    """Open a session (no session token) or wait for its frames."""
    if (refused := _refused(request, ctx)) is not None:
        return refused
    if ctx.sockets is None:
        return _unavailable()
    bearer = request.headers.get(_AUTH_HEADER) or bearer_token(
        request.query_params.getall("token", [])
    )
    peer = request.client.host if request.client else "unknown"
    return _answer(await ctx.sockets.longpoll.get(peer, _session(request), bearer))


@post(PATH, include_in_schema=False)
async def publish(
    request: Request[Any, Any, Any], ctx: NamedDependency[HttpContext]
) -> Response[bytes]:
    """The client's frames for its session."""
    if (refused := _refused(request, ctx)) is not None:
        return refused
    if ctx.sockets is None:
        return _unavailable()
    body = await request.body()
    ndjson = request.headers.get("content-type", "").startswith("application/x-ndjson")
    return _answer(await ctx.sockets.longpoll.post(_session(request), body, ndjson=ndjson))


router = Router("/", route_handlers=[poll, publish], include_in_schema=False)
