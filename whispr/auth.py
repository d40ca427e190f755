"""Who is connecting: JWT verification at the WebSocket handshake (PyJWT).

Tokens are signed by the auth service (or by ``whispr token`` in
development). HS256 with a shared secret is the default; RS256/ES256/EdDSA are
checked with the auth service's public key (``WHISPR_JWT_PUBLIC_KEY``) or with
the key its JWKS publishes under the token's ``kid`` (``WHISPR_JWT_JWKS_URL``).
The algorithm is pinned by configuration, never taken from the token, so a
token with ``alg: none`` or signed for another algorithm is refused.

The JWKS is PyJWT's :class:`jwt.PyJWKClient`: the key set is cached for
``WHISPR_JWT_JWKS_CACHE_S``; a token with a ``kid`` the cached set lacks (the
issuer rotated its keys) makes it fetch the set again, at most once per
``WHISPR_JWT_JWKS_COOLDOWN_S``, so tokens with made-up ``kid`` values cannot
make the node hammer the auth service. The client fetches with blocking I/O:
the node asks it from a worker thread, and only for a token it has not verified
before.

Claims: ``sub`` is the user id (required), ``device`` the device id
(optional: defaults to a per-connection id), ``exp`` is required; ``iss`` and
``aud`` are required and checked when ``WHISPR_JWT_ISSUER`` and
``WHISPR_JWT_AUDIENCE`` are set.

One verifier per node (:meth:`TokenVerifier.from_settings`), built by the
gateway; the gRPC API authenticates calling services, not users (tokens per
service or mTLS: :mod:`whispr.grpc.auth`), so it checks no user token.

A token that verified is remembered (a bounded LRU keyed on the token itself), so that a
client reconnecting with the same token is not verified again: when a node's clients all
reconnect to another at once, signature checks were a tenth of each reconnect's cost. Its
expiry is still checked at every use.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import jwt
from cachetools import LRUCache

from actors.errors import Reason, WhisprError
from actors.ids import new_id
from whispr.config import Settings

__all__ = ["Identity", "TokenVerifier", "claimed_user", "issue_token"]

#: Verified tokens remembered per node (about 0.3 KB each).
VERIFIED_CACHE_SIZE = 65_536
#: Seconds one fetch of the JWKS may take.
JWKS_TIMEOUT_S = 5.0

_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"}


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated user and device behind a connection or a call."""

    user_id: str
    device_id: str
    expires_at: float
    #: The token's ``iat`` (None without one) and ``jti`` (None without one): what the
    #: revocations of a user, a device or one token are checked against (whispr/revocations.py).
    issued_at: float | None = None
    jti: str | None = None


class TokenVerifier:
    """Checks tokens against one configured algorithm and key."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: jwt.PyJWKClient | None = None,
        algorithm: str = "HS256",
        leeway_s: float = 5.0,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if algorithm == "none":
            msg = "the 'none' algorithm is never accepted"
            raise ValueError(msg)
        self._jwks = jwks
        if algorithm in _ASYMMETRIC:
            if not public_key and jwks is None:
                msg = f"{algorithm} needs a public key (WHISPR_JWT_PUBLIC_KEY) or a JWKS"
                raise ValueError(msg)
            self._key: str = public_key or ""
        else:
            if not secret:
                msg = f"{algorithm} needs a secret (WHISPR_JWT_SECRET)"
                raise ValueError(msg)
            self._key = secret
        self.algorithm = algorithm
        self.leeway_s = leeway_s
        self.issuer = issuer
        self.audience = audience
        self._required = ["exp", "sub"]
        if issuer:
            self._required.append("iss")
        if audience:
            self._required.append("aud")
        #: token -> the identity of a token that verified (its device id None when it named
        #: none: each connection with it gets a device id of its own).
        self._verified: LRUCache[str, Identity] = LRUCache(VERIFIED_CACHE_SIZE)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """The node's verifier: algorithm, key or JWKS, issuer and audience as configured."""
        jwks = None
        if settings.jwt_jwks_url:
            jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url,
                lifespan=settings.jwt_jwks_cache_s,
                cooldown_duration=settings.jwt_jwks_cooldown_s,
                timeout=JWKS_TIMEOUT_S,
            )
        return cls(
            secret=settings.jwt_secret,
            public_key=settings.jwt_public_key,
            jwks=jwks,
            algorithm=settings.jwt_algorithm,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )

    async def verify(self, token: str | None) -> Identity:
        """The identity in ``token``.

        Raises:
            WhisprError: reason ``unauthorized``, saying what is wrong; ``unavailable`` when
                the JWKS cannot be fetched.
        """
        if not token:
            raise WhisprError(Reason.UNAUTHORIZED, "a token is required")
        known = self._verified.get(token)
        if known is not None and known.expires_at + self.leeway_s >= time.time():
            return replace(known, device_id=known.device_id or _anonymous_device())
        key: Any = self._key if self._jwks is None else await self._jwks_key(self._jwks, token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                leeway=self.leeway_s,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": self._required},
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
        issued = claims.get("iat")
        jti = claims.get("jti")
        identity = Identity(
            user_id,
            device or "",
            float(claims["exp"]),
            issued_at=float(issued) if isinstance(issued, int | float) else None,
            jti=jti if isinstance(jti, str) and jti else None,
        )
        self._verified[token] = identity
        return replace(identity, device_id=device or _anonymous_device())

    @staticmethod
    async def _jwks_key(jwks: jwt.PyJWKClient, token: str) -> Any:
        """The key the JWKS publishes under ``token``'s ``kid`` (fetched off the loop)."""
        try:
            signing_key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise WhisprError(
                Reason.UNAVAILABLE, f"the token issuer's keys cannot be fetched: {exc}"
            ) from None
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise WhisprError(Reason.UNAUTHORIZED, f"invalid token: {exc}") from None
        return signing_key.key


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
    jti: str | None = None,
) -> str:
    """A signed token for development and tests (``whispr token``)."""
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"sub": user_id, "iat": int(issued), "exp": int(issued + ttl_s)}
    if device_id is not None:
        claims["device"] = device_id
    if jti is not None:
        claims["jti"] = jti
    return jwt.encode(claims, secret, algorithm=algorithm)
