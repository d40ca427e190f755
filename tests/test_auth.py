"""Tokens at the handshake: valid ones pass, every kind of bad one is refused."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from actors.errors import Reason, WhisprError
from whispr.auth import TokenVerifier, issue_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


async def refused(verifier: TokenVerifier, token: str | None, match: str) -> None:
    with pytest.raises(WhisprError, match=match) as caught:
        await verifier.verify(token)
    assert caught.value.reason is Reason.UNAUTHORIZED


async def test_a_token_issued_with_the_secret_gives_the_user_and_device() -> None:
    verifier = TokenVerifier(secret=SECRET)
    identity = await verifier.verify(issue_token("alice", secret=SECRET, device_id="phone"))
    assert (identity.user_id, identity.device_id) == ("alice", "phone")
    assert identity.expires_at > time.time()


async def test_a_token_without_device_gets_a_connection_device_id() -> None:
    identity = await TokenVerifier(secret=SECRET).verify(issue_token("bob", secret=SECRET))
    assert identity.device_id.startswith("anon-")


async def test_expired_tokens_are_refused() -> None:
    token = issue_token("alice", secret=SECRET, ttl_s=60, now=time.time() - 3600)
    await refused(TokenVerifier(secret=SECRET), token, "expired")


async def test_a_verified_token_is_not_verified_again_but_still_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(secret=SECRET, leeway_s=0)
    token = issue_token("alice", secret=SECRET, device_id="phone", ttl_s=1)
    first = await verifier.verify(token)
    anonymous = issue_token("bob", secret=SECRET, ttl_s=60)
    devices = {(await verifier.verify(anonymous)).device_id}

    def no_second_check(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("verified again")

    with monkeypatch.context() as patched:
        patched.setattr(jwt, "decode", no_second_check)
        assert await verifier.verify(token) == first
        devices.add((await verifier.verify(anonymous)).device_id)
    assert len(devices) == 2  # still one device per connection
    await asyncio.sleep(max(0.0, first.expires_at - time.time()) + 0.05)
    await refused(verifier, token, "expired")


async def test_tokens_signed_with_another_secret_are_refused() -> None:
    token = issue_token("alice", secret="another-secret-another-secret-another")
    await refused(TokenVerifier(secret=SECRET), token, "invalid token")


async def test_unsigned_tokens_are_refused() -> None:
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none")
    await refused(TokenVerifier(secret=SECRET), token, "invalid token")


async def test_missing_and_garbage_tokens_are_refused() -> None:
    verifier = TokenVerifier(secret=SECRET)
    await refused(verifier, None, "required")
    await refused(verifier, "", "required")
    await refused(verifier, "not.a.jwt", "invalid token")


async def test_tokens_without_sub_or_exp_are_refused() -> None:
    verifier = TokenVerifier(secret=SECRET)
    await refused(verifier, jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"), "exp")
    no_sub = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    await refused(verifier, no_sub, "sub")
    bad_device = jwt.encode(
        {"sub": "a", "exp": int(time.time()) + 60, "device": 5}, SECRET, algorithm="HS256"
    )
    await refused(verifier, bad_device, "device")


async def test_es256_with_the_issuers_public_key() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = TokenVerifier(public_key=public_pem, algorithm="ES256")
    claims = {"sub": "carol", "exp": int(time.time()) + 60}
    identity = await verifier.verify(jwt.encode(claims, private, algorithm="ES256"))
    assert identity.user_id == "carol"
    # An HS256 token "signed" with the public key text must not pass (algorithm confusion).
    await refused(verifier, jwt.encode(claims, "x" * 40, algorithm="HS256"), "invalid token")


def test_configuration_mistakes_are_caught_at_start() -> None:
    with pytest.raises(ValueError, match="none"):
        TokenVerifier(secret=SECRET, algorithm="none")
    with pytest.raises(ValueError, match="public key"):
        TokenVerifier(algorithm="RS256")
    with pytest.raises(ValueError, match="secret"):
        TokenVerifier(algorithm="HS256")
