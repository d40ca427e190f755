"""Scheduled and disappearing messages: their records, limits and the rules of their times.

A **schedule** is a member's message to be sent later: the same draft as ``send_message``
plus ``send_at``. It is kept in the store (``ScheduleStore``), not in memory, and any node's
scheduler (``whispr/scheduler.py``) may send it; when it does, the message goes through the
conversation's actor as an ordinary send by its author, whose right to post is asked again
then, with the client id :func:`dispatch_client_id` (derived from the schedule's id), so a
dispatch retried after a node died mid-way finds the message it already wrote.

A **disappearing** message carries ``metadata.expires_at`` (seconds since the epoch), set
by the conversation actor when the message is sent, from the message's own ``ttl`` or the
conversation's ``disappearing_s`` setting, whichever is shorter. The timer runs **from
send**: the expiry is fixed when the message is written, the same instant for every member
and device, and known to the store in the same transaction as the message, so it survives
any restart and needs no member's device to report a read. (A timer from read would need
a per-reader expiry, deleting the message for one reader at a time, and would keep the
content as long as one member never reads it.)
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final

import msgspec

from actors.errors import Reason, WhisprError
from actors.events import encode_event
from actors.model import Draft

__all__ = [
    "DISAPPEARING_SETTING",
    "EXPIRES_AT",
    "LATE_AFTER_S",
    "MAX_PENDING_SCHEDULES",
    "MAX_SCHEDULE_AHEAD_S",
    "MAX_TTL_S",
    "RESERVED_METADATA",
    "SCHEDULED",
    "SCHEDULER_TOPIC",
    "Expiry",
    "Schedule",
    "check_disappearing",
    "check_no_reserved_metadata",
    "check_send_at",
    "check_ttl",
    "dispatch_client_id",
    "expires_at",
    "schedule_id_for",
    "scheduled_mark",
    "timer_event",
    "with_server_metadata",
]

#: The most pending schedules one member may hold in one conversation.
MAX_PENDING_SCHEDULES: Final = 100
#: How far ahead a message may be scheduled: one year.
MAX_SCHEDULE_AHEAD_S: Final = 366 * 86_400
#: The longest time a message may live before it disappears: one year (``ttl`` and the
#: conversation's ``disappearing_s``); the shortest is one second.
MAX_TTL_S: Final = 366 * 86_400
#: A scheduled message sent more than this after its ``send_at`` is marked ``late``.
LATE_AFTER_S: Final = 1.0
#: The conversation setting (``settings``) that makes every new message disappear after it.
DISAPPEARING_SETTING: Final = "disappearing_s"
#: The metadata key of a message's expiry time, read by the store (its expiry row).
EXPIRES_AT: Final = "expires_at"
#: The metadata key recording that a message was scheduled (``{"id", "send_at", "late"}``).
SCHEDULED: Final = "scheduled"
#: The cluster-wide broker topic on which a new due time is announced to every scheduler.
SCHEDULER_TOPIC: Final = "scheduler"
#: Metadata keys only the server sets: a client's message carrying one is refused.
RESERVED_METADATA: Final = frozenset({EXPIRES_AT, SCHEDULED})


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A message to be sent by ``sender_id`` in a conversation at ``send_at``.

    ``attempts`` counts the schedulers' claims of it: once claimed it may have been sent, so
    it can no longer be changed or cancelled (``conflict``).
    """

    id: str
    conversation_id: str
    sender_id: str
    draft: Draft
    send_at: float
    created_at: float
    attempts: int = 0


class Expiry(msgspec.Struct, frozen=True, kw_only=True):
    """A message due to disappear at ``expires_at``."""

    conversation_id: str
    seq: int
    expires_at: float


def schedule_id_for(conversation_id: str, sender_id: str, client_id: str) -> str:
    """A schedule's id: derived from its author's client id, so that a ``schedule_message``
    retried after the first one was sent (and its schedule dropped) makes a schedule whose
    message has the same client id as the one sent: a duplicate, never a second message."""
    key = "\x1f".join((conversation_id, sender_id, client_id)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def dispatch_client_id(schedule_id: str) -> str:
    """The client id of the message a schedule becomes: the same for every attempt."""
    return f"scheduled:{schedule_id}"


def scheduled_mark(schedule: Schedule, sent_at: float) -> dict[str, Any]:
    """What the sent message records of its schedule (``metadata.scheduled``)."""
    return {
        "id": schedule.id,
        "send_at": schedule.send_at,
        "late": sent_at - schedule.send_at > LATE_AFTER_S,
    }


def timer_event(at: float) -> bytes:
    """The broker event telling every node's scheduler that something is due at ``at``."""
    return encode_event("timer", {"at": at})


def with_server_metadata(
    draft: Draft, created_at: float, settings: dict[str, Any], scheduled: dict[str, Any] | None
) -> Draft:
    """The draft with the keys only the server sets: its expiry, and its schedule's mark."""
    extra: dict[str, Any] = {}
    at = expires_at(created_at, draft.ttl, settings)
    if at is not None:
        extra[EXPIRES_AT] = at
    if scheduled is not None:
        extra[SCHEDULED] = scheduled
    if not extra:
        return draft
    return msgspec.structs.replace(draft, metadata={**draft.metadata, **extra})


def check_send_at(send_at: object, now: float) -> float:
    """A finite time, at most :data:`MAX_SCHEDULE_AHEAD_S` ahead; a past time sends at once."""
    if (
        isinstance(send_at, bool)
        or not isinstance(send_at, int | float)
        or not math.isfinite(send_at)
        or not 0 <= send_at <= now + MAX_SCHEDULE_AHEAD_S
    ):
        raise WhisprError(
            Reason.INVALID,
            f"send_at must be a time in seconds since the epoch, at most {MAX_SCHEDULE_AHEAD_S} "
            "seconds ahead",
            field="send_at",
        )
    return float(send_at)


def check_ttl(ttl: object, field: str = "ttl") -> int:
    """A lifetime in whole seconds, 1 to :data:`MAX_TTL_S`."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_S:
        raise WhisprError(
            Reason.INVALID, f"{field} must be an integer from 1 to {MAX_TTL_S} seconds", field=field
        )
    return ttl


def check_disappearing(seconds: object) -> int | None:
    """The ``set_disappearing`` value: seconds (see :func:`check_ttl`), or None/0 for off."""
    if seconds is None or (type(seconds) is int and seconds == 0):
        return None
    return check_ttl(seconds, "seconds")


def check_no_reserved_metadata(metadata: dict[str, Any]) -> None:
    """Refuse a client's metadata naming a key only the server sets."""
    reserved = RESERVED_METADATA.intersection(metadata)
    if reserved:
        raise WhisprError(
            Reason.INVALID,
            f"metadata key {sorted(reserved)[0]!r} is set by the server",
            field="metadata",
        )


def expires_at(created_at: float, ttl: int | None, settings: dict[str, Any]) -> float | None:
    """When a message written at ``created_at`` disappears: the shorter of its own ``ttl``
    and the conversation's setting, or None (it stays)."""
    setting = settings.get(DISAPPEARING_SETTING)
    lifetimes = [t for t in (ttl, setting) if type(t) is int and t > 0]
    return created_at + min(lifetimes) if lifetimes else None
