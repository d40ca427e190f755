"""Error reasons as gRPC status codes: one table, used by every RPC.

The WebSocket path sends a :class:`~actors.errors.Reason` as the reply's
``reason``; the gRPC path sends the status code this table gives, the
error's message as the details, and the reason itself in the trailing
metadata (``whispr-reason``), so a caller can tell ``not_member`` from
``forbidden`` where both are PERMISSION_DENIED.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import grpc

from actors.errors import Reason, WhisprError

__all__ = ["REASON_METADATA_KEY", "STATUS_BY_REASON", "status_of", "trailing_metadata"]

#: The trailing metadata key carrying the reason of a refused call.
REASON_METADATA_KEY: Final = "whispr-reason"

#: Every reason's status code (a test checks that none is missing).
STATUS_BY_REASON: Final[Mapping[Reason, grpc.StatusCode]] = MappingProxyType(
    {
        Reason.NOT_MEMBER: grpc.StatusCode.PERMISSION_DENIED,
        Reason.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
        Reason.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
        Reason.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
        Reason.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        Reason.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
        Reason.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
        Reason.TOO_MANY_CONNECTIONS: grpc.StatusCode.RESOURCE_EXHAUSTED,
        Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
        Reason.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
        Reason.MISMATCHED_DEVICES: grpc.StatusCode.FAILED_PRECONDITION,
        Reason.STALE_DEVICES: grpc.StatusCode.FAILED_PRECONDITION,
    }
)


def status_of(error: WhisprError) -> grpc.StatusCode:
    """The status code for ``error`` (UNKNOWN for a reason not in the table)."""
    return STATUS_BY_REASON.get(error.reason, grpc.StatusCode.UNKNOWN)


def trailing_metadata(error: WhisprError) -> tuple[tuple[str, str], ...]:
    """The metadata sent with a refusal: its reason, and its details' ``field`` and ``right``
    (the right a ``forbidden`` caller lacks, ``actors/permissions.py``) if any; for
    ``mismatched_devices`` / ``stale_devices``, the devices (``missing``, ``extra``,
    ``stale``: user id -> device ids) as JSON (ASCII: metadata values must be)."""
    pairs = [(REASON_METADATA_KEY, str(error.reason))]
    for detail in ("field", "right"):
        value = error.details.get(detail)
        if isinstance(value, str):
            pairs.append((f"whispr-{detail}", value))
    for detail in ("missing", "extra", "stale"):
        devices = error.details.get(detail)
        if isinstance(devices, dict):
            pairs.append((f"whispr-{detail}", json.dumps(devices, sort_keys=True)))
    return tuple(pairs)
