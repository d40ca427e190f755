"""Who is calling the HTTP API: a user's bearer JWT, or a backend's service token.

Users present the token they open the WebSocket with (``Authorization: Bearer <jwt>``),
checked by the same :class:`~whispr.auth.TokenVerifier` the handshake uses, against the
same revocations and, when a user service is configured, the same "is this user active"
question: a token the socket refuses is refused here, with the same reason.

Backends calling ``/api/v1/server`` present a service token of ``WHISPR_GRPC_TOKENS``, named
and compared as the gRPC server does (:class:`~whispr.grpc.auth.CallerAuth`): one list of
callers for both.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from actors.errors import Reason, WhisprError
from whispr.auth import Identity
from whispr.http.context import HttpContext

__all__ = ["bearer_token", "caller", "identity"]


def bearer_token(request: Request[Any, Any, Any]) -> str:
    """The token of ``Authorization: Bearer <token>``.

    Raises:
        WhisprError: ``unauthorized`` when the header is missing or of another scheme.
    """
    header = request.headers.get("authorization")
    if header is None:
        raise WhisprError(
            Reason.UNAUTHORIZED, "a token is required: 'Authorization: Bearer <token>'"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise WhisprError(Reason.UNAUTHORIZED, "the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def identity(request: Request[Any, Any, Any], ctx: HttpContext) -> Identity:
    """The user behind the request's bearer token (a dependency of the client API's routes)."""
    verified = await ctx.verifier.verify(bearer_token(request))
    revoked = ctx.sessions.refused(verified)
    if revoked is not None:
        raise WhisprError(Reason.UNAUTHORIZED, revoked)
    if ctx.is_user_active is not None and not await ctx.is_user_active(verified.user_id):
        raise WhisprError(Reason.FORBIDDEN, "this user is not active")
    return verified


async def caller(request: Request[Any, Any, Any], ctx: HttpContext) -> str:
    """The backend service calling (a dependency of the server API's routes)."""
    return ctx.callers.caller(
        [("authorization", request.headers.get("authorization", ""))]
        if "authorization" in request.headers
        else None
    )
