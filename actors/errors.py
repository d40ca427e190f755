"""One catalogue of error reasons, shared by the WebSocket and gRPC paths.

At the edges, expected failures are values: a client's push or a sibling's
call that breaks a rule gets a :class:`WhisprError` with a reason it can act
on (retry later, ask to join, shorten the message), never a crash. The
gateway turns it into ``{"status": "error", "response": {"reason": ...}}``
and the gRPC server into a status code, from this one list.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["Reason", "WhisprError"]


class Reason(enum.StrEnum):
    """Why a request was refused."""

    NOT_MEMBER = "not_member"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    UNAUTHORIZED = "unauthorized"
    TOO_MANY_CONNECTIONS = "too_many_connections"


class WhisprError(Exception):
    """A refusal with a reason from the catalogue, a message for people, and details."""

    def __init__(self, reason: Reason, message: str, **details: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"WhisprError({self.reason.value}, {self.message!r})"

    def to_payload(self) -> dict[str, Any]:
        """The error as a reply payload: ``{"reason", "message", **details}``."""
        return {"reason": self.reason.value, "message": self.message, **self.details}
