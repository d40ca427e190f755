"""Safe defaults: the development secret never reaches a network, keys are checked at start,
misspelt variables are pointed out."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from whispr.config import ConfigError, is_loopback, load_settings, log_format_from_env


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "whispr.invalid"])
def test_the_dev_secret_on_a_non_loopback_address_is_refused(host: str) -> None:
    settings = load_settings(env={"WHISPR_HOST": host})
    with pytest.raises(ConfigError) as caught:
        settings.check_exposure()
    assert caught.value.variable == "WHISPR_JWT_SECRET"
    assert "WHISPR_ALLOW_DEV_SECRET=1" in caught.value.message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "env",
    [
        {"WHISPR_HOST": "127.0.0.1"},
        {"WHISPR_HOST": "localhost"},
        {"WHISPR_HOST": "::1"},
        {"WHISPR_HOST": "0.0.0.0", "WHISPR_JWT_SECRET": "s" * 48},
        {"WHISPR_HOST": "0.0.0.0", "WHISPR_ALLOW_DEV_SECRET": "1"},
        {"WHISPR_HOST": "0.0.0.0", "WHISPR_ALLOW_DEV_SECRET": "true"},
    ],
)
def test_loopback_a_real_secret_or_an_explicit_opt_in_may_start(env: dict[str, str]) -> None:
    load_settings(env=env).check_exposure()


def test_loopback_means_every_address_is_a_loopback_one() -> None:
    assert is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.0.0.1")


def _public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_the_public_key_is_parsed_at_start() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    settings = load_settings(
        env={"WHISPR_JWT_ALGORITHM": "ES256", "WHISPR_JWT_PUBLIC_KEY": _public_pem(ec_key)}
    )
    assert not settings.uses_dev_jwt_secret
    settings.check_exposure()

    bad = {
        "not pem": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
        "a private key": ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "an RSA key for ES256": _public_pem(rsa.generate_private_key(65537, 2048)),
    }
    for what, pem in bad.items():
        with pytest.raises(ConfigError) as caught:
            load_settings(env={"WHISPR_JWT_ALGORITHM": "ES256", "WHISPR_JWT_PUBLIC_KEY": pem})
        assert caught.value.variable == "WHISPR_JWT_PUBLIC_KEY", what
        assert "\n" not in str(caught.value), what


def test_a_jwks_url_replaces_the_public_key_and_needs_an_asymmetric_algorithm() -> None:
    url = "https://auth.example/.well-known/jwks.json"
    settings = load_settings(env={"WHISPR_JWT_ALGORITHM": "RS256", "WHISPR_JWT_JWKS_URL": url})
    assert settings.jwt_jwks_url == url
    with pytest.raises(ConfigError, match="asymmetric"):
        load_settings(env={"WHISPR_JWT_JWKS_URL": url})
    with pytest.raises(ConfigError, match="JWKS URL"):
        load_settings(env={"WHISPR_JWT_ALGORITHM": "RS256", "WHISPR_JWT_JWKS_URL": "ftp://x"})


def test_a_misspelt_variable_is_warned_about_with_a_suggestion() -> None:
    env = {
        "WHISPR_JWT_SECRT": "s" * 48,
        "WHISPR_REDIS_ULR": "redis://127.0.0.1:6379/0",
        "WHISPR_REQUIRE_SERVICES": "1",  # a tool's, not a setting: no warning
        "WHISPR_PORT": "4000",
        "WHISPR_SOMETHING_ELSE_ENTIRELY": "x",
        "PATH": "/usr/bin",
    }
    warnings = load_settings(env=env).startup_warnings(env)
    assert "WHISPR_JWT_SECRT is not a setting and is ignored; did you mean WHISPR_JWT_SECRET?" in (
        warnings
    )
    assert any("WHISPR_REDIS_ULR" in w and "WHISPR_REDIS_URL?" in w for w in warnings)
    assert any(w.startswith("WHISPR_SOMETHING_ELSE_ENTIRELY is not a setting") for w in warnings)
    assert not any("REQUIRE_SERVICES" in w or "WHISPR_PORT " in w for w in warnings)


def test_the_log_format_of_an_error_before_the_settings_are_read() -> None:
    assert log_format_from_env({"WHISPR_LOG_FORMAT": "JSON"}) == "json"
    assert log_format_from_env({"WHISPR_LOG_FORMAT": "console"}) == "console"
    assert log_format_from_env({"WHISPR_LOG_FORMAT": "xml"}) in ("json", "console")
