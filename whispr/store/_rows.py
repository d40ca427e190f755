"""Rows to records: the decoding both backends share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from sys import intern
from typing import Any

import msgspec

from actors.model import Attachment, Conversation, DeliveryCursor, Member, Message
from actors.search import HIGHLIGHT_END, HIGHLIGHT_START, SearchHit, highlighted

__all__ = [
    "conversation",
    "conversation_params",
    "delivery_cursor",
    "dumps",
    "member",
    "member_params",
    "message",
    "reactions_by_seq",
    "search_hit",
    "sequenced",
]

_encoder = msgspec.json.Encoder()
_attachments = msgspec.json.Decoder(tuple[Attachment, ...])
_object = msgspec.json.Decoder(dict[str, Any])


def dumps(value: Any) -> str:
    return _encoder.encode(value).decode()


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return _object.decode(value)


def conversation(row: Mapping[str, Any]) -> Conversation:
    return Conversation(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        avatar=row["avatar"],
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
        last_message_at=row["last_message_at"],
        settings=_json_object(row["settings"]),
    )


def member(row: Mapping[str, Any]) -> Member:
    return Member(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        role=row["role"],
        joined_at=row["joined_at"],
        muted_until=row["muted_until"],
        notifications=row["notifications"],
        read_seq=row["read_seq"],
        archived=bool(row["archived"]),
        pin_order=row["pin_order"],
    )


def delivery_cursor(row: Mapping[str, Any]) -> DeliveryCursor:
    return DeliveryCursor(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        device_id=row["device_id"],
        delivered_seq=row["seq"],
    )


def message(row: Mapping[str, Any], reactions: dict[str, tuple[str, ...]] | None = None) -> Message:
    attachments = row["attachments"]
    return Message(
        # Interned: the messages a conversation actor caches then share one
        # copy of their conversation id, sender ids and kind (memory per actor).
        conversation_id=intern(row["conversation_id"]),
        seq=row["seq"],
        id=row["id"],
        client_id=row["client_id"],
        sender_id=intern(row["sender_id"]),
        kind=intern(row["kind"]),  # type: ignore[arg-type]
        content=row["content"],
        attachments=_attachments.decode(attachments) if attachments and attachments != "[]" else (),
        reply_to=row["reply_to"],
        created_at=row["created_at"],
        edited_at=row["edited_at"],
        deleted=bool(row["deleted"]),
        reactions=reactions or {},
        pinned=bool(row["pinned"]),
        metadata=_json_object(row["metadata"]),
    )


def reactions_by_seq(
    rows: Iterable[Mapping[str, Any]],
) -> dict[int, dict[str, tuple[str, ...]]]:
    """``seq -> emoji -> user ids`` from rows ordered by seq, emoji, time."""
    grouped: dict[int, dict[str, list[str]]] = {}
    for row in rows:
        grouped.setdefault(row["seq"], {}).setdefault(row["emoji"], []).append(row["user_id"])
    return {seq: {e: tuple(u) for e, u in by_emoji.items()} for seq, by_emoji in grouped.items()}


def conversation_params(c: Conversation) -> tuple[Any, ...]:
    """The values of a conversations row, in the column order both backends insert."""
    return (
        c.id,
        c.kind,
        c.title,
        c.avatar,
        c.created_by,
        c.created_at,
        c.last_seq,
        c.last_message_at,
        dumps(c.settings),
    )


def member_params(m: Member) -> tuple[Any, ...]:
    """The values of a members row, in the column order both backends insert."""
    return (
        m.conversation_id,
        m.user_id,
        m.role,
        m.joined_at,
        m.muted_until,
        m.notifications,
        m.read_seq,
        m.archived,
        m.pin_order,
    )


def sequenced(m: Message, seq: int) -> Message:
    """The plain message an unsequenced ``m`` became once the store gave it ``seq``."""
    return Message(
        conversation_id=m.conversation_id,
        seq=seq,
        id=m.id,
        client_id=m.client_id,
        sender_id=m.sender_id,
        kind=m.kind,
        content=m.content,
        attachments=m.attachments,
        reply_to=m.reply_to,
        created_at=m.created_at,
        metadata=m.metadata,
    )


def search_hit(message: Message, rank: float, marked: str) -> SearchHit:
    """A hit from a store's row: the snippet's marks turned into ranges. A message whose own
    text holds a mark character gets no highlights rather than wrong ones."""
    snippet, ranges = highlighted(marked)
    if HIGHLIGHT_START in message.content or HIGHLIGHT_END in message.content:
        ranges = ()
    return SearchHit(message=message, rank=float(rank), snippet=snippet, highlights=ranges)
