"""One catalogue of error reasons, shared by the WebSocket and gRPC paths.

At the edges, expected failures are values: a client's push or a sibling's
call that breaks a rule gets a :class:`WhisprError` with a reason it can act
on (retry later, ask to join, shorten the message), never a crash. The
gateway turns it into ``{"status": "error", "response": {"reason": ...}}``
and the gRPC server into a status code, from this one list.

One way to raise: ``raise WhisprError(Reason.NOT_FOUND, "no message 7")``,
the reason spelled out where the refusal is made. Code that *handles* an
error matches on ``error.reason``: that is what crosses the wire, and every
error carries one. The subclasses (:class:`NotFound`, :class:`Invalid`, ...)
are what an error rebuilt from the wire (:meth:`WhisprError.from_payload`)
or unpickled in another process comes back as, one per reason.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "MismatchedDevices",
    "NotFound",
    "NotMember",
    "RateLimited",
    "Reason",
    "StaleDevices",
    "TooLarge",
    "TooManyConnections",
    "Unauthorized",
    "Unavailable",
    "WhisprError",
]


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
    #: An end-to-end send whose envelopes leave out a member's device or name one that is
    #: not there (``missing``, ``extra``: user -> device ids); actors/e2e/rules.py.
    MISMATCHED_DEVICES = "mismatched_devices"
    #: An end-to-end send to a device registered again since (``stale``: user -> device ids).
    STALE_DEVICES = "stale_devices"


class WhisprError(Exception):
    """A refusal with a reason from the catalogue, a message for people, and details.

    ``details`` are small JSON-able values the client can act on (``field``,
    ``limit``, ``retry_after``); they are merged into the reply payload, so
    they must not be named ``reason`` or ``message``.
    """

    def __init__(self, reason: Reason, message: str, **details: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"WhisprError({self.reason.value}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles ``self.args`` (the message alone), which cannot
        # rebuild an error that also needs its reason and details.
        return (_restore, (self.reason.value, self.message, self.details))

    def to_payload(self) -> dict[str, Any]:
        """The error as a reply payload: ``{"reason", "message", **details}``.

        A message or detail that quotes a client's text holding a lone surrogate (which no
        reply can encode) has it escaped (``\\udXXX``), so the refusal still goes out.
        """
        details = {k: _encodable(v) if isinstance(v, str) else v for k, v in self.details.items()}
        return {"reason": self.reason.value, "message": _encodable(self.message), **details}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> WhisprError:
        """The error a :meth:`to_payload` payload describes, as its subclass.

        An unknown reason (a newer peer's) is read as ``unavailable``: the
        caller cannot act on what it does not know, and retrying later is the
        safe default.
        """
        details = {k: v for k, v in payload.items() if k not in ("reason", "message")}
        raw = payload.get("reason")
        message = str(payload.get("message", raw))
        return _restore(raw if isinstance(raw, str) else "", message, details)


class _Refusal(WhisprError):
    """A :class:`WhisprError` whose reason is fixed by its class."""

    REASON: ClassVar[Reason]
    DEFAULT_MESSAGE: ClassVar[str]

    def __init__(self, message: str | None = None, **details: Any) -> None:
        super().__init__(self.REASON, message or self.DEFAULT_MESSAGE, **details)


class NotMember(_Refusal):
    """The user is not a member of the conversation named."""

    REASON = Reason.NOT_MEMBER
    DEFAULT_MESSAGE = "not a member of this conversation"


class Forbidden(_Refusal):
    """A member, but without the role the action needs."""

    REASON = Reason.FORBIDDEN
    DEFAULT_MESSAGE = "not allowed"


class TooLarge(_Refusal):
    """Content or a batch over its limit (``details["limit"]`` says which)."""

    REASON = Reason.TOO_LARGE
    DEFAULT_MESSAGE = "too large"


class RateLimited(_Refusal):
    """Too many requests; ``details["retry_after"]`` in seconds when known."""

    REASON = Reason.RATE_LIMITED
    DEFAULT_MESSAGE = "too many requests"


class Invalid(_Refusal):
    """Malformed input; ``details["field"]`` names the culprit when there is one."""

    REASON = Reason.INVALID
    DEFAULT_MESSAGE = "invalid request"


class NotFound(_Refusal):
    """No such conversation, message or member."""

    REASON = Reason.NOT_FOUND
    DEFAULT_MESSAGE = "not found"


class Conflict(_Refusal):
    """The request contradicts stored state (an id already taken, say)."""

    REASON = Reason.CONFLICT
    DEFAULT_MESSAGE = "conflicts with the current state"


class Unavailable(_Refusal):
    """A dependency (the store, the broker) cannot serve now; retry later."""

    REASON = Reason.UNAVAILABLE
    DEFAULT_MESSAGE = "temporarily unavailable"


class Unauthorized(_Refusal):
    """No valid credentials: missing, expired or wrongly signed token."""

    REASON = Reason.UNAUTHORIZED
    DEFAULT_MESSAGE = "unauthorized"


class TooManyConnections(_Refusal):
    """Over the connection limit (per IP, or the node's)."""

    REASON = Reason.TOO_MANY_CONNECTIONS
    DEFAULT_MESSAGE = "too many connections"


class MismatchedDevices(_Refusal):
    """Envelopes missing for some devices, or given for devices that are not there."""

    REASON = Reason.MISMATCHED_DEVICES
    DEFAULT_MESSAGE = "the envelopes do not match the members' devices"


class StaleDevices(_Refusal):
    """Envelopes for devices registered again since the sender's session began."""

    REASON = Reason.STALE_DEVICES
    DEFAULT_MESSAGE = "some devices were registered again"


_BY_REASON: dict[Reason, type[_Refusal]] = {
    cls.REASON: cls
    for cls in (
        NotMember,
        Forbidden,
        TooLarge,
        RateLimited,
        Invalid,
        NotFound,
        Conflict,
        Unavailable,
        Unauthorized,
        TooManyConnections,
        MismatchedDevices,
        StaleDevices,
    )
}


def _encodable(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _restore(reason: str, message: str, details: dict[str, Any]) -> WhisprError:
    """Rebuild an error from its reason's value: the pickle and payload path."""
    try:
        known = Reason(reason)
    except ValueError:
        known = Reason.UNAVAILABLE
    return _BY_REASON[known](message, **details)
