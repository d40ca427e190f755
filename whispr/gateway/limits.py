"""The per-event rate limits of the WebSocket API: one table, one check.

Each limit is a budget per user per minute, across all the user's devices and every node
(the counters of :mod:`whispr.gateway.ratelimit`), set by one setting of
:class:`~whispr.config.Settings`, and counts the client events listed beside it in
:data:`LIMITS`. The check runs before the event's handler does anything (a channel's
``handle_in`` after decoding the payload, a connection's join before the channel is asked),
so a refused event writes nothing and publishes nothing. The refusal is ``rate_limited``
with ``limit`` (per minute), ``event`` (the limit's name) and ``retry_after`` (seconds until
one more fits). A user throttled for suspicious activity (:mod:`whispr.gateway.abuse`) gets
the same refusal for every limited event until the throttle ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from actors.errors import Reason, WhisprError
from whispr.config import Settings
from whispr.gateway.ratelimit import RateLimiter

__all__ = ["LIMITS", "PHX_JOIN", "EventLimit", "EventLimits", "LimitName"]

LimitName = Literal[
    "send", "edit", "react", "typing", "join", "create_conversation", "search", "bundle_fetch"
]

#: The pseudo-event a join is counted as (the protocol's own name for it).
PHX_JOIN: Final = "phx_join"
#: Every limit is per minute.
WINDOW_S: Final = 60


@dataclass(frozen=True, slots=True)
class EventLimit:
    """One budget: its name, the setting giving its size, what it counts."""

    name: LimitName
    #: The :class:`~whispr.config.Settings` field (``WHISPR_<FIELD>``) that sets it.
    setting: str
    #: What it counts, in words for the refusal (``messages``).
    what: str
    #: The ``(channel kind, client event)`` pairs it counts; a join is ``phx_join``.
    events: tuple[tuple[str, str], ...]


#: The one table of limits. ``bundle_fetch`` counts key bundle fetches (each may claim a
#: one-time prekey of every device of a user: exhausting them is an attack).
LIMITS: Final[tuple[EventLimit, ...]] = (
    EventLimit(
        "send",
        "rate_limit_per_minute",
        "messages",
        (("conversation", "send_message"), ("conversation", "schedule_message")),
    ),
    EventLimit(
        "edit",
        "rate_limit_edit_per_minute",
        "edits, deletions or pins",
        (
            ("conversation", "edit_message"),
            ("conversation", "delete_message"),
            ("conversation", "pin"),
            ("conversation", "update_scheduled"),
            ("conversation", "cancel_scheduled"),
        ),
    ),
    EventLimit("react", "rate_limit_react_per_minute", "reactions", (("conversation", "react"),)),
    EventLimit(
        "typing",
        "rate_limit_typing_per_minute",
        "typing events",
        (("conversation", "typing_start"), ("conversation", "typing_stop")),
    ),
    EventLimit("join", "rate_limit_join_per_minute", "joins", (("conversation", PHX_JOIN),)),
    EventLimit(
        "create_conversation",
        "rate_limit_create_conversation_per_minute",
        "new conversations",
        (("user", "create_conversation"),),
    ),
    EventLimit(
        "search",
        "rate_limit_search_per_minute",
        "searches",
        (("conversation", "search"), ("user", "search")),
    ),
    EventLimit(
        "bundle_fetch",
        "rate_limit_bundle_fetch_per_minute",
        "key bundle fetches",
        (("user", "get_bundles"),),
    ),
)

_BY_EVENT: Final = {event: limit for limit in LIMITS for event in limit.events}
_BY_NAME: Final = {limit.name: limit for limit in LIMITS}


class EventLimits:
    """The node's limits: :data:`LIMITS` sized by ``settings``, counted by ``limiter``."""

    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.per_minute: dict[LimitName, int] = {
            limit.name: int(getattr(settings, limit.setting)) for limit in LIMITS
        }

    @staticmethod
    def of(kind: str, event: str) -> EventLimit | None:
        """The limit counting ``event`` on ``kind:`` topics, if any."""
        return _BY_EVENT.get((kind, event))

    async def check(self, user_id: str, kind: str, event: str) -> None:
        """Count ``event`` of ``user_id`` against its limit, if it has one.

        Raises:
            WhisprError: ``rate_limited`` with ``limit``, ``event`` and ``retry_after``.
        """
        limit = _BY_EVENT.get((kind, event))
        if limit is not None:
            await self.count(user_id, limit.name)

    async def count(self, user_id: str, name: LimitName) -> None:
        """Count one event of the limit ``name`` (see :meth:`check`)."""
        limit = _BY_NAME[name]
        per_minute = self.per_minute[name]
        outcome = await self.limiter.hit(user_id, name, per_minute, WINDOW_S)
        if outcome.counted:
            return
        retry = max(0.001, math.ceil(outcome.retry_after * 1000) / 1000)
        if outcome.throttled:
            message = f"throttled for suspicious activity; retry in {retry:g} s"
        else:
            message = f"at most {per_minute} {limit.what} per minute"
        raise WhisprError(
            Reason.RATE_LIMITED, message, limit=per_minute, event=name, retry_after=retry
        )
