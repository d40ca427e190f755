"""What an audit record is, and what a store must do to keep them.

One record per security event: who it is about (``user_id``), who caused it (``actor``),
what happened (``kind``, ``reason``), where (``source``, ``node``, ``peer``) and when
(``at``, seconds since the epoch like every time the stores keep). ``details`` holds the
event's small specifics (the topic and event of a refused push, the gRPC method, the
conversation and role of a membership change).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import msgspec

__all__ = ["AuditCursor", "AuditKind", "AuditRecord", "AuditStore", "Source"]


class AuditKind(enum.StrEnum):
    """The security events recorded."""

    #: A WebSocket token refused: at the handshake (missing, malformed, badly signed,
    #: expired) or on an open connection once it expired.
    TOKEN_REFUSED = "token_refused"
    #: A request refused for want of a right: ``forbidden``, ``not_member``, or a user
    #: the user service says is not active.
    PERMISSION_DENIED = "permission_denied"
    #: A request refused by a rate limit (messages per minute, connections per address,
    #: a gRPC follower that fell behind).
    RATE_LIMITED = "rate_limited"
    #: A member added, removed or leaving, or a member's role changed.
    MEMBERSHIP_CHANGED = "membership_changed"
    #: A gRPC call without credentials, or with credentials nobody was given.
    GRPC_AUTH_FAILED = "grpc_auth_failed"
    #: A user's activity matched a suspicious pattern (the same content sent to many
    #: conversations, a creation or join flood, repeated refusals), and what was done.
    SUSPICIOUS_ACTIVITY = "suspicious_activity"


#: Where the event was seen: a client's WebSocket or long-poll session, a sibling's gRPC
#: call, a request to the HTTP API, or the conversation actor that made a membership change
#: (whichever API asked).
Source = Literal["websocket", "longpoll", "grpc", "http", "conversation"]


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One security event (see the module's docstring)."""

    #: Time-ordered and unique (``actors.ids.new_id``): the tie-break when paging.
    id: str
    at: float
    kind: AuditKind
    #: Whom it is about: the token's user, the refused user, the member whose membership
    #: changed. None when nobody is known (a malformed token, a gRPC caller).
    user_id: str | None
    #: Who did it when that is someone else: the member or service that changed a
    #: membership, the gRPC caller.
    actor: str | None = None
    #: What was refused or changed, in a word or a short sentence (``token expired``,
    #: ``forbidden``, ``removed``).
    reason: str
    source: Source
    node: str
    #: The client's address, when there is a connection to have one.
    peer: str | None = None
    details: dict[str, Any] = {}


#: A page's position: the ``(at, id)`` of the last record of the previous page.
AuditCursor = tuple[float, str]


class AuditStore(Protocol):
    """Where audit records are kept (``PostgresStore`` and ``SqliteStore`` implement it)."""

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Keep ``records``, all or none; a record whose id is kept already is skipped."""
        ...

    async def audit_page(
        self,
        *,
        since: float,
        until: float,
        user_id: str | None = None,
        kinds: Sequence[AuditKind] = (),
        after: AuditCursor | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Records with ``since <= at < until``, oldest first, at most ``limit``: of
        ``user_id`` alone when given, of ``kinds`` alone when some are given, and after
        ``after`` (the previous page's last record) when paging."""
        ...

    async def purge_audit(self, before: float) -> int:
        """Delete the records older than ``before``; how many went."""
        ...
