"""Settings: defaults, environment, TOML file, precedence and error messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from whispr.config import (
    DEV_JWT_SECRET,
    ConfigError,
    Settings,
    env_var,
    load_settings,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "whispr.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_development_node() -> None:
    settings = load_settings(env={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 4000
    assert settings.database_url is None
    assert settings.embedded_store
    assert settings.sqlite_path == "whispr.db"
    assert settings.redis_url is None
    assert settings.in_process_broker
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert settings.jwt_algorithm == "HS256"
    assert settings.allowed_origins == ()
    assert settings.max_content_bytes == 10_000
    assert settings.rate_limit_per_minute == 100
    assert settings.max_connections_per_ip == 10
    assert settings.listen_backlog == 4096
    assert settings.gc_thresholds == (50_000, 20, 100)
    assert settings.heartbeat_interval_s == 30
    assert settings.heartbeat_timeout_s == 90
    assert settings.grpc_port == 50051
    assert settings.log_level == "info"
    assert settings.shutdown_deadline_s == 25
    assert settings.compression == "off"
    assert settings.chaos_hooks is False
    assert settings.node_name.endswith(f"-{os.getpid()}")


def test_log_format_defaults_to_json_when_stderr_is_not_a_terminal() -> None:
    # Under pytest stderr is captured, so it is not a TTY.
    assert load_settings(env={}).log_format == "json"


def test_development_secret_warns_and_a_real_one_does_not() -> None:
    assert any("WHISPR_JWT_SECRET" in w for w in load_settings(env={}).startup_warnings())
    strong = load_settings(env={"WHISPR_JWT_SECRET": "x" * 40})
    assert not strong.uses_dev_jwt_secret
    assert strong.startup_warnings() == []
    weak = load_settings(env={"WHISPR_JWT_SECRET": "short"})
    assert any("32 bytes" in w for w in weak.startup_warnings())


def test_environment_values_are_parsed_to_their_types() -> None:
    settings = load_settings(
        env={
            "WHISPR_NODE_NAME": "pod-7",
            "WHISPR_HOST": "0.0.0.0",
            "WHISPR_PORT": "4100",
            "WHISPR_DATABASE_URL": "postgresql://u:p@db:5432/whispr",
            "WHISPR_REDIS_URL": "redis://cache:6379/1",
            "WHISPR_JWT_SECRET": "s" * 32,
            "WHISPR_ALLOWED_ORIGINS": "https://app.example, http://localhost:3000",
            "WHISPR_MAX_CONTENT_BYTES": "2048",
            "WHISPR_HEARTBEAT_INTERVAL_S": "0.5",
            "WHISPR_HEARTBEAT_TIMEOUT_S": "1.5",
            "WHISPR_GRPC_PORT": "0",
            "WHISPR_LOG_FORMAT": "Console",
            "WHISPR_LOG_LEVEL": "DEBUG",
            "WHISPR_COMPRESSION": "deflate",
            "WHISPR_SHUTDOWN_DEADLINE_S": "10",
        }
    )
    assert settings.node_name == "pod-7"
    assert settings.host == "0.0.0.0"
    assert settings.port == 4100
    assert settings.database_url == "postgresql://u:p@db:5432/whispr"
    assert not settings.embedded_store
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.allowed_origins == ("https://app.example", "http://localhost:3000")
    assert settings.max_content_bytes == 2048
    assert settings.heartbeat_interval_s == 0.5
    assert settings.heartbeat_timeout_s == 1.5
    assert settings.grpc_port == 0
    assert settings.log_format == "console"
    assert settings.log_level == "debug"
    assert settings.compression == "deflate"
    assert settings.shutdown_deadline_s == 10.0


def test_empty_variables_count_as_unset() -> None:
    settings = load_settings(env={"WHISPR_REDIS_URL": "", "WHISPR_PORT": " ", "WHISPR_HOST": ""})
    assert settings.redis_url is None
    assert settings.port == 4000
    assert settings.host == "127.0.0.1"


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'port = 4200\nredis_url = "redis://r:6379/0"\n'
        'allowed_origins = ["https://a.example"]\nheartbeat_interval_s = 10\n',
    )
    settings = load_settings(path, env={})
    assert settings.port == 4200
    assert settings.redis_url == "redis://r:6379/0"
    assert settings.allowed_origins == ("https://a.example",)
    assert settings.heartbeat_interval_s == 10.0


def test_a_whispr_table_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "[whispr]\nport = 4300\n")
    assert load_settings(path, env={}).port == 4300


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 4200\nlog_level = "warning"\n')
    settings = load_settings(path, env={"WHISPR_PORT": "4400"})
    assert settings.port == 4400
    assert settings.log_level == "warning"


def test_whispr_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 4500\n")
    assert load_settings(env={"WHISPR_CONFIG": str(path)}).port == 4500


def test_the_config_argument_wins_over_whispr_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "port = 4600\n")
    other = tmp_path / "other.toml"
    other.write_text("port = 4700\n", encoding="utf-8")
    assert load_settings(chosen, env={"WHISPR_CONFIG": str(other)}).port == 4600


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WHISPR_PORT", "http", "integer"),
        ("WHISPR_PORT", "70000", "65535"),
        ("WHISPR_GRPC_PORT", "-1", ">= 0"),
        ("WHISPR_MAX_CONTENT_BYTES", "0", ">= 1"),
        ("WHISPR_RATE_LIMIT_PER_MINUTE", "lots", "integer"),
        ("WHISPR_MAX_CONNECTIONS_PER_IP", "1.5", "integer"),
        ("WHISPR_HEARTBEAT_INTERVAL_S", "-3", "> 0"),
        ("WHISPR_SHUTDOWN_DEADLINE_S", "soon", "number"),
        ("WHISPR_LOG_FORMAT", "xml", "'json'"),
        ("WHISPR_LOG_LEVEL", "loud", "'debug'"),
        ("WHISPR_COMPRESSION", "gzip", "'deflate'"),
        ("WHISPR_JWT_ALGORITHM", "none", "'HS256'"),
        ("WHISPR_DATABASE_URL", "mysql://db/x", "PostgreSQL"),
        ("WHISPR_REDIS_URL", "http://cache", "Redis"),
        ("WHISPR_ALLOWED_ORIGINS", "https://ok.example,not-an-origin", "https://host"),
        ("WHISPR_NODE_NAME", "has space", "matching"),
        ("WHISPR_GC_THRESHOLDS", "5000,20", "3 values, each an integer >= 1"),
        ("WHISPR_GC_THRESHOLDS", "5000,0,20", "3 values, each an integer >= 1"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert expected in str(caught.value)


def test_secrets_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"WHISPR_DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)


def test_cross_field_rules_name_a_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"WHISPR_HEARTBEAT_INTERVAL_S": "60", "WHISPR_HEARTBEAT_TIMEOUT_S": "30"})
    assert caught.value.variable == "WHISPR_HEARTBEAT_TIMEOUT_S"
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"WHISPR_JWT_ALGORITHM": "RS256"})
    assert caught.value.variable == "WHISPR_JWT_PUBLIC_KEY"
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"WHISPR_PORT": "5000", "WHISPR_GRPC_PORT": "5000"})
    assert caught.value.variable == "WHISPR_GRPC_PORT"


def test_chaos_hooks_are_refused_on_a_node_reachable_from_elsewhere() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert load_settings(env={"WHISPR_HOST": host, "WHISPR_CHAOS_HOOKS": "true"}).chaos_hooks
    for host in ("0.0.0.0", "10.0.0.1", "whispr.example"):
        with pytest.raises(ConfigError, match="loopback") as caught:
            load_settings(env={"WHISPR_HOST": host, "WHISPR_CHAOS_HOOKS": "1"})
        assert caught.value.variable == "WHISPR_CHAOS_HOOKS"
        assert not load_settings(env={"WHISPR_HOST": host, "WHISPR_CHAOS_HOOKS": "0"}).chaos_hooks
    with pytest.raises(ConfigError, match="WHISPR_CHAOS_HOOKS"):
        load_settings(env={"WHISPR_CHAOS_HOOKS": "sure"})


def test_asymmetric_algorithm_with_a_key_is_accepted() -> None:
    key = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = load_settings(env={"WHISPR_JWT_ALGORITHM": "ES256", "WHISPR_JWT_PUBLIC_KEY": key})
    assert settings.jwt_public_key == key.strip()
    assert not settings.uses_dev_jwt_secret


def test_bad_file_values_name_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = "four thousand"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.variable.startswith("port")
    assert str(path) in str(caught.value)


def test_unknown_file_keys_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "prot = 4000\n")
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        load_settings(path, env={})


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"WHISPR_CONFIG": str(tmp_path / "absent.toml")})
    assert caught.value.variable == "WHISPR_CONFIG"
    assert "not found" in str(caught.value)
    broken = write(tmp_path, "port = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(broken, env={})
    assert caught.value.variable == "--config"


def test_with_overrides_validates_and_keeps_the_rest() -> None:
    settings = load_settings(env={"WHISPR_LOG_LEVEL": "debug"})
    changed = settings.with_overrides(port=0)
    assert changed.port == 0
    assert changed.log_level == "debug"
    assert settings.port == 4000
    with pytest.raises(ConfigError, match="65535"):
        settings.with_overrides(port=99999)
    with pytest.raises(ConfigError, match="not a setting"):
        settings.with_overrides(prot=1)


def test_settings_are_frozen_and_their_repr_hides_secrets() -> None:
    settings = load_settings(
        env={
            "WHISPR_JWT_SECRET": "very-secret-value",
            "WHISPR_DATABASE_URL": "postgresql://u:pw@h/d",
        }
    )
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
    assert "very-secret-value" not in repr(settings)
    assert "pw@" not in repr(settings)
    assert "port=4000" in repr(settings)


VALID = {
    "node_name": "n1",
    "host": "::1",
    "port": "1",
    "database_url": "postgres://h/d",
    "sqlite_path": "/tmp/x.db",
    "store_breaker_failures": "2",
    "store_breaker_open_s": "5",
    "store_breaker_trials": "1",
    "audit_retention_days": "7",
    "redis_url": "rediss://h:6380/0",
    "redis_prefix": "cluster-b",
    "jwt_secret": "k" * 32,
    "jwt_algorithm": "HS512",
    "jwt_public_key": "PEM",
    "jwt_jwks_url": "https://b.example/jwks.json",
    "jwt_jwks_cache_s": "60",
    "jwt_jwks_cooldown_s": "5",
    "jwt_issuer": "https://auth.example",
    "jwt_audience": "whispr",
    "allow_dev_secret": "1",
    "allowed_origins": "https://a.example",
    "max_content_bytes": "1",
    "rate_limit_per_minute": "1",
    "max_connections_per_ip": "1",
    "listen_backlog": "128",
    "gc_thresholds": "5000,20,50",
    "heartbeat_interval_s": "1",
    "heartbeat_timeout_s": "91",
    "max_frame_bytes": "1024",
    "outbound_buffer_bytes": "4096",
    "inbound_credits": "4",
    "position_check_s": "0.5",
    "grpc_port": "2",
    "http_port": "3",
    "http_max_body_bytes": "2048",
    "grpc_tokens": "users=t1,moderation=t2",
    "grpc_tls_cert": "/etc/whispr/tls.crt",
    "grpc_tls_key": "/etc/whispr/tls.key",
    "grpc_tls_client_ca": "/etc/whispr/ca.crt",
    "user_service_url": "users:50051",
    "notification_service_url": "notifications:50051",
    "media_service_url": "media:50051",
    "moderation_service_url": "moderation:50051",
    "sibling_token": "s3cret",
    "sibling_tls_ca": "/etc/whispr/siblings-ca.crt",
    "sibling_deadline_s": "0.5",
    "sibling_breaker_failures": "2",
    "sibling_breaker_open_s": "5",
    "sibling_breaker_trials": "1",
    "user_active_cache_s": "60",
    "moderation_policy": "FAIL_CLOSED",
    "log_format": "console",
    "log_level": "error",
    "shutdown_deadline_s": "1",
    "compression": "deflate",
    "chaos_hooks": "1",
    "rate_limit_edit_per_minute": "7",
    "rate_limit_react_per_minute": "7",
    "rate_limit_typing_per_minute": "7",
    "rate_limit_join_per_minute": "7",
    "rate_limit_create_conversation_per_minute": "7",
    "rate_limit_bundle_fetch_per_minute": "7",
    "typing_timeout_s": "2.5",
    "abuse_window_s": "30",
    "abuse_duplicates": "2",
    "abuse_creations": "2",
    "abuse_joins": "2",
    "abuse_refusals": "2",
    "abuse_duplicates_response": "REPORT",
    "abuse_creations_response": "disconnect",
    "abuse_joins_response": "record",
    "abuse_refusals_response": "throttle",
    "abuse_throttle_s": "5",
}


# Fields that come in pairs: the environment each is changed from (the pair already set).
COMPANIONS = {
    "jwt_jwks_url": {
        "WHISPR_JWT_ALGORITHM": "RS256",
        "WHISPR_JWT_JWKS_URL": "https://a.example/jwks.json",
    },
    "grpc_tls_cert": {"WHISPR_GRPC_TLS_CERT": "/other.crt", "WHISPR_GRPC_TLS_KEY": "/k"},
    "grpc_tls_key": {"WHISPR_GRPC_TLS_CERT": "/c", "WHISPR_GRPC_TLS_KEY": "/other.key"},
    "grpc_tls_client_ca": {"WHISPR_GRPC_TLS_CERT": "/c", "WHISPR_GRPC_TLS_KEY": "/k"},
}


def test_every_field_is_read_from_its_variable() -> None:
    assert env_var("max_content_bytes") == "WHISPR_MAX_CONTENT_BYTES"
    assert set(VALID) == set(Settings.__struct_fields__)
    for name, value in VALID.items():
        partners = COMPANIONS.get(name, {})
        baseline = load_settings(env=partners)
        changed = load_settings(env={**partners, env_var(name): value})
        differing = [
            field
            for field in Settings.__struct_fields__
            if getattr(changed, field) != getattr(baseline, field)
        ]
        assert differing == [name]


def test_grpc_settings_are_checked() -> None:
    settings = load_settings(env={"WHISPR_GRPC_TOKENS": " users = t1 , moderation=t2 "})
    assert settings.grpc_tokens == ("users = t1", "moderation=t2")
    assert load_settings(env={"WHISPR_MODERATION_POLICY": "Fail_Closed"}).moderation_policy == (
        "fail_closed"
    )
    for env, variable in [
        ({"WHISPR_GRPC_TOKENS": "users"}, "WHISPR_GRPC_TOKENS"),
        ({"WHISPR_GRPC_TOKENS": "=token"}, "WHISPR_GRPC_TOKENS"),
        ({"WHISPR_GRPC_TLS_CERT": "/c"}, "WHISPR_GRPC_TLS_KEY"),
        ({"WHISPR_GRPC_TLS_KEY": "/k"}, "WHISPR_GRPC_TLS_CERT"),
        ({"WHISPR_GRPC_TLS_CLIENT_CA": "/ca"}, "WHISPR_GRPC_TLS_CLIENT_CA"),
        ({"WHISPR_MODERATION_POLICY": "maybe"}, "WHISPR_MODERATION_POLICY"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_settings(env=env)
        assert caught.value.variable == variable, env
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"WHISPR_GRPC_TOKENS": "users=hunter2,broken"})
    assert "hunter2" not in str(caught.value)
    shown = repr(load_settings(env={"WHISPR_GRPC_TOKENS": "users=hunter2"}))
    assert "hunter2" not in shown
