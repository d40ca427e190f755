"""Who is connecting: JWT verification at the WebSocket handshake (PyJWT).

Tokens are signed by the auth service (or by ``whispr token`` in
development). HS256 with a shared secret is the default; RS256/ES256 with the
auth service's public key are accepted when a key is configured. The
algorithm is pinned by configuration, never taken from the token, so a token
with ``alg: none`` or signed for another algorithm is refused.

Claims: ``sub`` is the user id (required), ``device`` the device id
(optional: defaults to a per-connection id), ``exp`` is required.

A token that verified is remembered (a bounded LRU keyed on the token itself), so that a
client reconnecting with the same token is not verified again: when a node's clients all
reconnect to another at once, signature checks were a tenth of each reconnect's cost. Its
expiry is still checked at every use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from cachetools import LRUCache

from actors.errors import Reason, WhisprError
from actors.ids import new_id

__all__ = ["Identity", "TokenVerifier", "claimed_user", "issue_token"]

#: Verified tokens remembered per node (about 0.3 KB each).
VERIFIED_CACHE_SIZE = 65_536

_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"}


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated user and device behind a connection or a call."""

    user_id: str
    device_id: str
    expires_at: float


class TokenVerifier:
    """Checks tokens against one configured algorithm and key."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        algorithm: str = "HS256",
        leeway_s: float = 5.0,
        audience: str | None = None,
    ) -> None:
        if algorithm == "none":
            msg = "the 'none' algorithm is never accepted"
            raise ValueError(msg)
        if algorithm in _ASYMMETRIC:
            if not public_key:
                msg = f"{algorithm} needs a public key (WHISPR_JWT_PUBLIC_KEY)"
                raise ValueError(msg)
            self._key: str = public_key
        else:
            if not secret:
                msg = f"{algorithm} needs a secret (WHISPR_JWT_SECRET)"
                raise ValueError(msg)
            self._key = secret
        self.algorithm = algorithm
        self.leeway_s = leeway_s
        self.audience = audience
        #: token -> (user id, device id or None, expiry) of tokens that verified.
        self._verified: LRUCache[str, tuple[str, str | None, float]] = LRUCache(VERIFIED_CACHE_SIZE)

    def verify(self, token: str | None) -> Identity:
        """The identity in ``token``.

        Raises:
            WhisprError: reason ``unauthorized``, saying what is wrong.
        """
        if not token:
            raise WhisprError(Reason.UNAUTHORIZED, "a token is required")
        known = self._verified.get(token)
        if known is not None and known[2] + self.leeway_s >= time.time():
            return Identity(known[0], known[1] or _anonymous_device(), known[2])
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                leeway=self.leeway_s,
                audience=self.audience,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise WhisprError(Reason.UNAUTHORIZED, "token expired") from None
        except jwt.InvalidTokenError as exc:
            raise WhisprError(Reason.UNAUTHORIZED, f"invalid token: {exc}") from None
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id or len(user_id) > 128:
            raise WhisprError(Reason.UNAUTHORIZED, "invalid token: bad 'sub' claim")
        device = claims.get("device")
        if device is not None and (not isinstance(device, str) or not device or len(device) > 128):
            raise WhisprError(Reason.UNAUTHORIZED, "invalid token: bad 'device' claim")
        expires_at = float(claims["exp"])
        self._verified[token] = (user_id, device, expires_at)
        return Identity(user_id, device or _anonymous_device(), expires_at)


def claimed_user(token: str | None) -> str | None:
    """The ``sub`` a refused token claims, read without checking anything, for the audit
    log: who a refused connection was for. Trust it only as far as the refusal's reason
    allows (an expired token's signature was checked; a badly signed one's was not)."""
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    sub = claims.get("sub")
    return sub[:128] if isinstance(sub, str) and sub else None


def _anonymous_device() -> str:
    """A device id for a token without one: each connection is a device of its own."""
    return f"anon-{new_id()}"


def issue_token(
    user_id: str,
    *,
    secret: str,
    device_id: str | None = None,
    ttl_s: float = 3600.0,
    algorithm: str = "HS256",
    now: float | None = None,
) -> str:
    """A signed token for development and tests (``whispr token``)."""
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"sub": user_id, "iat": int(issued), "exp": int(issued + ttl_s)}
    if device_id is not None:
        claims["device"] = device_id
    return jwt.encode(claims, secret, algorithm=algorithm)
