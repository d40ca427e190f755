"""Who is calling: one bearer token per sibling service, or a client certificate.

Callers present ``authorization: Bearer <token>`` metadata; the node knows
each caller's token from ``WHISPR_GRPC_TOKENS`` (``service=token`` pairs) and
names the call's caller after it (messages it sends are from
``service:<name>``, logs and metrics say who called). When the node serves
mTLS (``WHISPR_GRPC_TLS_CLIENT_CA``), the TLS handshake has already checked
the caller's certificate, and its common name is the caller's name.

Tokens are compared in constant time against every configured token, so the
time a refusal takes says nothing about how close a guess was.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from actors.errors import Reason, WhisprError

__all__ = ["CallerAuth", "parse_tokens"]


def parse_tokens(pairs: Iterable[str]) -> dict[str, str]:
    """``["user=s3cret", ...]`` (the setting's form) as ``{token: service}``."""
    tokens: dict[str, str] = {}
    for pair in pairs:
        service, _, token = pair.partition("=")
        tokens[token.strip()] = service.strip()
    return tokens


@dataclass(frozen=True)
class CallerAuth:
    """Names the caller of each call, or refuses it."""

    tokens: dict[str, str]
    """``{token: service name}``."""
    mtls: bool = False
    """Client certificates are required by the TLS layer: the certificate names the caller."""

    def caller(
        self,
        metadata: Sequence[tuple[str, str | bytes]] | None,
        auth_context: dict[str, list[bytes]] | None = None,
    ) -> str:
        """The calling service's name.

        Raises:
            WhisprError: ``unauthorized``: no credentials, or credentials nobody was given.
        """
        header = _header(metadata, "authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise WhisprError(
                    Reason.UNAUTHORIZED, "the authorization metadata must be 'Bearer <token>'"
                )
            service = self._service_for(token.strip())
            if service is None:
                raise WhisprError(Reason.UNAUTHORIZED, "unknown token")
            return service
        if self.mtls and auth_context:
            names = auth_context.get("x509_common_name") or []
            if names:
                return names[0].decode()
        raise WhisprError(
            Reason.UNAUTHORIZED, "no credentials: send 'authorization: Bearer <token>' metadata"
        )

    def _service_for(self, token: str) -> str | None:
        found: str | None = None
        presented = token.encode()
        for known, service in self.tokens.items():
            # No early exit: every token is compared whatever matches.
            if hmac.compare_digest(presented, known.encode()):
                found = service
        return found


def _header(metadata: Sequence[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name.lower() == key:
            return value.decode() if isinstance(value, bytes) else value
    return None
