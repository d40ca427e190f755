"""Suspicious activity: patterns in a user's events, and the node's configured response.

The patterns (docs/protocol.md, "Suspicious activity", says where they come from), each
counted per user over ``WHISPR_ABUSE_WINDOW_S`` on the rate limiter's counters, so across
every node the user's devices are connected to:

- ``duplicates``: the same content sent to more than ``WHISPR_ABUSE_DUPLICATES``
  distinct conversations (spam sent around);
- ``creations``: more than ``WHISPR_ABUSE_CREATIONS`` conversations created;
- ``joins``: more than ``WHISPR_ABUSE_JOINS`` conversation joins (channel hopping);
- ``refusals``: more than ``WHISPR_ABUSE_REFUSALS`` actions refused for a rate limit or a
  missing right (probing, or a client stuck in a loop).

A match is an audit record (``suspicious_activity``, at most one per user, pattern and node
per window, the next one counting the matches left out), then the pattern's response,
``WHISPR_ABUSE_<PATTERN>_RESPONSE``:

- ``record``: the audit record alone;
- ``throttle``: every rate-limited event of the user is refused (``rate_limited`` with
  ``retry_after``) on every node for ``WHISPR_ABUSE_THROTTLE_S``, the event that matched
  included (but for ``duplicates``, below);
- ``report``: the user is reported to the moderation service (``ReportActivity``, once per
  window, like the record); the event goes on;
- ``disconnect``: the connection is closed with 1008 and the event that matched is not
  handled.

The checks run where the rate limits do (:meth:`AbuseDetector.observe` after the event's
limit, before its handler; :meth:`AbuseDetector.refused` when a refusal is sent), so an event
refused for a pattern writes nothing. ``duplicates`` is the exception: it watches every send,
so its count runs beside the send rather than before it (awaited, it would be a second Redis
round trip on every message's path); the send that crosses its threshold is handled, and the
response applies from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import structlog

from actors.errors import Reason, WhisprError
from whispr.audit import AuditKind, AuditLog
from whispr.audit.record import Source
from whispr.auth import Identity
from whispr.config import AbuseResponse, Settings
from whispr.gateway.limits import PHX_JOIN
from whispr.gateway.ratelimit import RateLimiter, whole_seconds
from whispr.protocol import CloseCode
from whispr.siblings import Moderator

__all__ = ["PATTERNS", "AbuseDetector", "Pattern", "Suspect"]

log = structlog.get_logger("whispr.abuse")

Pattern = Literal["duplicates", "creations", "joins", "refusals"]

#: The close reason of a connection disconnected for suspicious activity.
DISCONNECT_REASON: Final = "suspicious activity"
#: The refusals that count towards ``refusals``: the client was told no for a limit or a
#: right, not for a malformed request or an outage.
_COUNTED_REFUSALS: Final = frozenset(
    {Reason.RATE_LIMITED, Reason.FORBIDDEN, Reason.NOT_MEMBER, Reason.UNAUTHORIZED}
)
#: The client events each pattern watches, as ``(channel kind, event)``.
_WATCHED: Final[dict[tuple[str, str], Pattern]] = {
    ("conversation", "send_message"): "duplicates",
    ("user", "create_conversation"): "creations",
    ("conversation", PHX_JOIN): "joins",
}
#: Users whose last record (or report) per pattern is remembered before the oldest go.
_REMEMBERED: Final = 10_000


@dataclass(frozen=True, slots=True)
class Watch:
    """One pattern as configured: its threshold and response."""

    pattern: Pattern
    threshold: int
    response: AbuseResponse
    #: What a match means, for the record and the report.
    what: str


#: Each pattern: the settings of its threshold and response, and what it means.
PATTERNS: Final[dict[Pattern, tuple[str, str, str]]] = {
    "duplicates": (
        "abuse_duplicates",
        "abuse_duplicates_response",
        "the same content sent to many conversations",
    ),
    "creations": ("abuse_creations", "abuse_creations_response", "conversation creation flood"),
    "joins": ("abuse_joins", "abuse_joins_response", "conversation join flood"),
    "refusals": ("abuse_refusals", "abuse_refusals_response", "repeated refused actions"),
}


class Suspect(Protocol):
    """The connection whose events are watched (``ConnectionActor``'s public face)."""

    identity: Identity
    user_id: str
    #: The transport the events came through (``websocket``, ``longpoll``).
    source: Source

    def close(self, code: int, reason: str) -> None:
        """Close the socket."""


class AbuseDetector:
    """The node's watch over its clients' events; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        limiter: RateLimiter,
        audit: AuditLog,
        moderation: Moderator | None = None,
    ) -> None:
        self.limiter = limiter
        self.audit = audit
        self.moderation = moderation
        self.node = settings.node_name
        self.window_s = whole_seconds(settings.abuse_window_s)
        self.throttle_s = settings.abuse_throttle_s
        self.watches: dict[Pattern, Watch] = {
            pattern: Watch(pattern, getattr(settings, limit), getattr(settings, response), what)
            for pattern, (limit, response, what) in PATTERNS.items()
        }
        #: (user, pattern) -> when it was last recorded, and the matches left out since.
        self._recorded: dict[tuple[str, Pattern], tuple[float, int]] = {}
        #: The ``duplicates`` counts under way (run beside the sends they count).
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the checks -------------------------------------------------------------------------

    async def observe(
        self, suspect: Suspect, kind: str, event: str, target: str, payload: Any = None
    ) -> None:
        """Watch one client event (already counted by its rate limit) before it is handled.

        Raises:
            WhisprError: ``rate_limited`` when the response throttles, or the connection is
                closing (``disconnect``): the event must not be handled.
        """
        pattern = _WATCHED.get((kind, event))
        if pattern is None:
            return
        watch = self.watches[pattern]
        if pattern == "duplicates":
            content = getattr(payload, "content", None)
            if isinstance(content, str) and content:
                key = f"abuse-dup:{suspect.user_id}:{_digest(content)}"
                self._beside(self._count_duplicate(suspect, watch, key, target))
            return
        outcome = await self.limiter.hit(
            suspect.user_id,
            f"abuse-{pattern}",
            watch.threshold,
            self.window_s,
            honour_throttle=False,
        )
        if outcome.counted:
            return
        details = {"event": event, "target": target}
        await self._matched(suspect, watch, details, pending=True)

    async def _count_duplicate(self, suspect: Suspect, watch: Watch, key: str, target: str) -> None:
        """Count one send's content towards ``duplicates``, beside the send (not before it:
        awaited, the count was a second Redis round trip on every send's path, and the send
        path's P95 at the benchmark's load went from about 40 ms to 150-400 ms). So the send
        that crosses the threshold is handled; the response applies from then on."""
        seen = await self.limiter.distinct(key, target, self.window_s)
        if seen > watch.threshold:
            details = {"conversations": seen, "conversation_id": target}
            await self._matched(suspect, watch, details, pending=False)

    def _beside(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of its own, held until done; a failure is logged."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("suspicious-activity check failed", error=str(task.exception()))

    async def refused(self, suspect: Suspect, error: WhisprError, event: str) -> None:
        """Count a refusal just sent to ``suspect`` (those for limits and rights only)."""
        if error.reason not in _COUNTED_REFUSALS:
            return
        watch = self.watches["refusals"]
        outcome = await self.limiter.hit(
            suspect.user_id,
            "abuse-refusals",
            watch.threshold,
            self.window_s,
            honour_throttle=False,
        )
        if not outcome.counted:
            details = {"event": event, "error": error.reason.value}
            await self._matched(suspect, watch, details, pending=False)

    # -- the responses ----------------------------------------------------------------------

    async def _matched(
        self, suspect: Suspect, watch: Watch, details: dict[str, Any], *, pending: bool
    ) -> None:
        """Record the match and respond; raise when a ``pending`` event must not go on."""
        response = watch.response
        suppressed = self._left_out(suspect.user_id, watch.pattern)
        first = suppressed is not None
        if first:
            self.audit.record(
                AuditKind.SUSPICIOUS_ACTIVITY,
                user_id=suspect.user_id,
                reason=watch.what,
                source=suspect.source,
                device_id=suspect.identity.device_id,
                pattern=watch.pattern,
                threshold=watch.threshold,
                window_s=self.window_s,
                response=response,
                suppressed=suppressed,
                **details,
            )
        if response == "throttle":
            await self.limiter.throttle(suspect.user_id, self.throttle_s)
            if pending:
                raise WhisprError(
                    Reason.RATE_LIMITED,
                    f"throttled for suspicious activity ({watch.what})",
                    event=watch.pattern,
                    retry_after=self.throttle_s,
                )
        elif response == "report" and first and self.moderation is not None:
            await self.moderation.report(
                suspect.user_id,
                watch.pattern,
                watch.what,
                device_id=suspect.identity.device_id,
                node=self.node,
                at=time.time(),
                details={key: str(value) for key, value in details.items()},
            )
        elif response == "disconnect":
            suspect.close(CloseCode.POLICY_VIOLATION, DISCONNECT_REASON)
            if pending:
                raise WhisprError(Reason.FORBIDDEN, f"suspicious activity ({watch.what})")

    def _left_out(self, user_id: str, pattern: Pattern) -> int | None:
        """None when a match of ``pattern`` by ``user_id`` was recorded less than a window
        ago (this one is left out); else how many were left out since the last record."""
        now = time.monotonic()
        key = (user_id, pattern)
        last = self._recorded.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._recorded[key] = (last[0], last[1] + 1)
            return None
        if len(self._recorded) >= _REMEMBERED:
            for old in [k for k, (at, _) in self._recorded.items() if now - at >= self.window_s]:
                del self._recorded[old]
            if len(self._recorded) >= _REMEMBERED:
                for old in list(self._recorded)[: _REMEMBERED // 2]:
                    del self._recorded[old]
        self._recorded.pop(key, None)
        self._recorded[key] = (now, 0)
        return 0 if last is None else last[1]


def _digest(content: str) -> str:
    """A short fingerprint of ``content`` (the counters never hold the content itself)."""
    return hashlib.blake2b(content.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
