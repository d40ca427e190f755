"""Scheduled messages and expiries: the rows and checks both backends share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from actors.errors import Reason, WhisprError
from actors.model import Draft, Message
from actors.scheduling import EXPIRES_AT, Expiry, Schedule
from whispr.store import _check

__all__ = [
    "SCHEDULE_COLUMNS",
    "check_schedule",
    "conflict",
    "draft_json",
    "expires_at_of",
    "expiry",
    "schedule",
]

_draft = msgspec.json.Decoder(Draft)
_encoder = msgspec.json.Encoder()

SCHEDULE_COLUMNS = "id, conversation_id, sender_id, draft, send_at, created_at, attempts"


def draft_json(draft: Draft) -> str:
    return _encoder.encode(draft).decode()


def schedule(row: Mapping[str, Any]) -> Schedule:
    return Schedule(
        id=row["id"],
        conversation_id=row["conversation_id"],
        sender_id=row["sender_id"],
        draft=_draft.decode(row["draft"]),
        send_at=row["send_at"],
        created_at=row["created_at"],
        attempts=row["attempts"],
    )


def expiry(row: Any) -> Expiry:
    return Expiry(conversation_id=row[0], seq=row[1], expires_at=row[2])


def check_schedule(s: Schedule) -> None:
    """What the store holds of a schedule: ids, finite times, and a draft whose message the
    store would take (the same checks as a group-commit batch's)."""
    _check.name(s.id, "id")
    _check.name(s.conversation_id, "conversation_id")
    _check.name(s.sender_id, "sender_id")
    check_times(s.send_at, s.created_at)
    check_draft(s.draft, s.conversation_id, s.sender_id, s.created_at)


def check_times(*times: float) -> None:
    for value in times:
        _check.time(value, "send_at")


def check_draft(draft: Draft, conversation_id: str, sender_id: str, at: float) -> None:
    _check.messages(
        [
            Message(
                conversation_id=conversation_id,
                seq=1 if draft.reply_to is None else draft.reply_to + 1,
                id="schedule",
                client_id=draft.client_id,
                sender_id=sender_id,
                kind=draft.kind,
                content=draft.content,
                attachments=draft.attachments,
                reply_to=draft.reply_to,
                created_at=at,
                metadata=draft.metadata,
            )
        ]
    )


def expires_at_of(message: Message) -> float | None:
    """The expiry a message carries (``metadata.expires_at``), if any."""
    value = message.metadata.get(EXPIRES_AT)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def conflict(schedule_id: str) -> WhisprError:
    return WhisprError(
        Reason.CONFLICT,
        f"schedule {schedule_id} is being sent and can no longer change",
        field="schedule_id",
    )
