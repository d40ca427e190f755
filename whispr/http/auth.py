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
from whispr.auth import Identity, claimed_user
from whispr.http.context import context_of

__all__ = [
    "USER_STATE",
    "authenticate_service",
    "authenticate_user",
    "bearer_token",
    "caller",
    "identity",
]


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


#: Where a request's user (or the user a refused token claims) is kept for the audit log.
USER_STATE = "whispr_user_id"
#: Where the request's verified identity (client API) or caller (server API) is kept.
IDENTITY_STATE = "whispr_identity"
CALLER_STATE = "whispr_caller"


async def authenticate_user(request: Request[Any, Any, Any]) -> None:
    """Verify the request's user before anything else of it is looked at (its body
    included), as the socket does at connect; the client API's first ``before_request``."""
    ctx = context_of(request)
    token = bearer_token(request)
    try:
        verified = await ctx.verifier.verify(token)
    except WhisprError:
        request.state[USER_STATE] = claimed_user(token)
        raise
    request.state[USER_STATE] = verified.user_id
    revoked = ctx.sessions.refused(verified)
    if revoked is not None:
        raise WhisprError(Reason.UNAUTHORIZED, revoked)
    if ctx.is_user_active is not None and not await ctx.is_user_active(verified.user_id):
        raise WhisprError(Reason.FORBIDDEN, "this user is not active")
    request.state[IDENTITY_STATE] = verified


def authenticate_service(request: Request[Any, Any, Any]) -> None:
    """Name the backend calling, or refuse it; the server API's first ``before_request``."""
    header = request.headers.get("authorization")
    callers = context_of(request).callers
    request.state[CALLER_STATE] = callers.caller(
        None if header is None else [("authorization", header)]
    )


def identity(request: Request[Any, Any, Any]) -> Identity:
    """The user :func:`authenticate_user` verified (a dependency of the client API)."""
    verified = request.state[IDENTITY_STATE]
    assert isinstance(verified, Identity)
    return verified


def caller(request: Request[Any, Any, Any]) -> str:
    """The backend :func:`authenticate_service` named (a dependency of the server API)."""
    return str(request.state[CALLER_STATE])
