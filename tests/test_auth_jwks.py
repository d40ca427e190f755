"""Keys from the issuer's JWKS (PyJWKClient over real HTTP), key rotation with a rate-limited
refetch, and the issuer and audience checks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from actors.errors import Reason, WhisprError
from whispr.auth import TokenVerifier
from whispr.bench.nodes import free_port
from whispr.config import load_settings


class Issuer:
    """An auth service's JWKS endpoint: serves the public keys it holds, counts fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                body = json.dumps({"keys": issuer.jwks()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate(self, kid: str) -> None:
        """A new signing key ``kid`` (the old ones stay published)."""
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> list[dict[str, Any]]:
        return [
            {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256"}
            for kid, key in self.keys.items()
        ]

    def token(self, kid: str, **claims: Any) -> str:
        body = {"sub": "ada", "exp": int(time.time()) + 60, **claims}
        return jwt.encode(body, self.keys[kid], algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    issuer.rotate("k1")
    yield issuer
    issuer.server.shutdown()
    issuer.server.server_close()


def _verifier(issuer: Issuer, **env: str) -> TokenVerifier:
    settings = load_settings(
        env={
            "WHISPR_JWT_ALGORITHM": "ES256",
            "WHISPR_JWT_JWKS_URL": issuer.url,
            "WHISPR_JWT_JWKS_COOLDOWN_S": "30",
            **env,
        }
    )
    return TokenVerifier.from_settings(settings)


async def test_a_token_is_checked_with_the_key_its_kid_names(issuer: Issuer) -> None:
    verifier = _verifier(issuer)
    assert (await verifier.verify(issuer.token("k1"))).user_id == "ada"
    forged = jwt.encode(
        {"sub": "ada", "exp": int(time.time()) + 60},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    with pytest.raises(WhisprError, match="invalid token") as caught:
        await verifier.verify(forged)
    assert caught.value.reason is Reason.UNAUTHORIZED


async def test_a_rotated_key_is_fetched_and_unknown_kids_cannot_flood_the_issuer(
    issuer: Issuer,
) -> None:
    verifier = _verifier(issuer, WHISPR_JWT_JWKS_COOLDOWN_S="0.2")
    await verifier.verify(issuer.token("k1"))
    fetched = issuer.fetches

    await asyncio.sleep(0.25)  # past the cooldown of the first fetch
    issuer.rotate("k2")  # the issuer signs with a new key: one refetch finds it
    assert (await verifier.verify(issuer.token("k2"))).user_id == "ada"
    assert issuer.fetches == fetched + 1

    # Tokens naming keys nobody published: within the cooldown, no fetch at all.
    for n in range(20):
        issuer.rotate(f"made-up-{n}")
        token = issuer.token(f"made-up-{n}")
        del issuer.keys[f"made-up-{n}"]
        with pytest.raises(WhisprError, match="invalid token"):
            await verifier.verify(token)
    assert issuer.fetches <= fetched + 2


async def test_issuer_and_audience_are_required_and_checked(issuer: Issuer) -> None:
    verifier = _verifier(
        issuer, WHISPR_JWT_ISSUER="https://auth.example", WHISPR_JWT_AUDIENCE="whispr"
    )
    good = issuer.token("k1", iss="https://auth.example", aud=["whispr", "other"])
    assert (await verifier.verify(good)).user_id == "ada"
    for bad, why in [
        (issuer.token("k1", iss="https://evil.example", aud="whispr"), "issuer"),
        (issuer.token("k1", iss="https://auth.example", aud="another"), "audience"),
        (issuer.token("k1", aud="whispr"), "iss"),
        (issuer.token("k1", iss="https://auth.example"), "aud"),
    ]:
        with pytest.raises(WhisprError, match=f"(?i){why}") as caught:
            await verifier.verify(bad)
        assert caught.value.reason is Reason.UNAUTHORIZED


async def test_an_unreachable_jwks_is_unavailable_not_unauthorized(issuer: Issuer) -> None:
    token = issuer.token("k1")
    settings = load_settings(
        env={
            "WHISPR_JWT_ALGORITHM": "ES256",
            "WHISPR_JWT_JWKS_URL": f"http://127.0.0.1:{free_port()}/jwks.json",
        }
    )
    with pytest.raises(WhisprError) as caught:
        await TokenVerifier.from_settings(settings).verify(token)
    assert caught.value.reason is Reason.UNAVAILABLE
