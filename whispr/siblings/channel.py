"""Channels to the sibling services: TLS or not, retries by gRPC's own policy.

Retries of idempotent calls are gRPC's (the channel's service config): up to 3
attempts on UNAVAILABLE, with exponential backoff from 50 ms, within the call's
deadline. Every call of Whispr's siblings is idempotent (push requests carry
an idempotency key), so every method gets the policy.

Each call is a client span carrying W3C ``traceparent`` in its metadata
(``whispr/tracing.py``), so a sibling that traces joins the caller's trace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import grpc

from whispr.config import Settings
from whispr.tracing import client_interceptors

__all__ = ["RETRY_POLICY", "open_channel"]

#: The retry policy of every sibling method (gRPC's service config format).
RETRY_POLICY: Final = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def _service_config(service: str) -> str:
    return json.dumps(
        {"methodConfig": [{"name": [{"service": service}], "retryPolicy": RETRY_POLICY}]}
    )


def open_channel(target: str, service: str, settings: Settings) -> grpc.aio.Channel:
    """A channel to ``target`` (``host:port``) for the gRPC service named ``service``."""
    options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config(service)),
        # A sibling restarting must not leave the channel waiting out a long backoff.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    if settings.sibling_tls_ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(settings.sibling_tls_ca).read_bytes()
        )
        return grpc.aio.secure_channel(
            target, credentials, options=options, interceptors=client_interceptors()
        )
    return grpc.aio.insecure_channel(target, options=options, interceptors=client_interceptors())
