"""Token refresh in band: a fresh token on an open connection moves its expiry.

A connection is closed with 1008 once its token expires (``ConnectionActor``), so a client
that stays connected for longer than a token lives would lose its channels and rejoin them
all. Instead it sends ``refresh_token`` on the ``phoenix`` topic with a fresh token before
the old one expires; the node verifies it as at the handshake and, if it names the same user
(and, when it names one, the same device), the connection keeps its channels and takes the
new token's expiry. A token that does not verify, or names someone else, is refused with an
``unauthorized`` reply and changes nothing: the socket stays open until the old token
expires.
"""

from __future__ import annotations

from typing import Any, Final

import jwt

from actors.errors import Reason, WhisprError
from whispr.auth import Identity, TokenVerifier
from whispr.gateway.channels.base import Payload, decode_payload

__all__ = ["REFRESH_TOKEN", "RefreshToken", "refreshed_identity"]

#: The ``phoenix`` topic event carrying a fresh token.
REFRESH_TOKEN: Final = "refresh_token"


class RefreshToken(Payload):
    """``refresh_token`` on ``phoenix``: reply ``{"expires_at"}`` (seconds since the epoch)."""

    token: str


async def refreshed_identity(
    verifier: TokenVerifier, current: Identity, payload: dict[str, Any] | bytes
) -> Identity:
    """``current`` with the expiry of the fresh token in ``payload``.

    Raises:
        WhisprError: ``invalid`` (no token field), ``unauthorized`` (the token does not
            verify, or is another user's or another device's), ``unavailable`` (the
            issuer's keys cannot be fetched).
    """
    token = decode_payload(RefreshToken, payload).token
    fresh = await verifier.verify(token)
    if fresh.user_id != current.user_id:
        raise WhisprError(Reason.UNAUTHORIZED, "the token is another user's")
    device = _named_device(token)
    if device is not None and device != current.device_id:
        raise WhisprError(Reason.UNAUTHORIZED, "the token is another device's")
    return Identity(current.user_id, current.device_id, fresh.expires_at)


def _named_device(token: str) -> str | None:
    """The ``device`` claim of a token that verified (a token without one names none)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    device = claims.get("device")
    return device if isinstance(device, str) else None
