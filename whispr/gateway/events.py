"""The application events of the WebSocket API: one msgspec struct per client payload.

Each struct is the one definition of an event's payload; ``docs/protocol.md`` documents them
from here. A payload that does not fit its struct (a missing field, a wrong type, an unknown
field) is refused with an ``invalid`` error reply naming the field, and nothing is done.

Server-to-client payloads are the domain structs (:mod:`actors.model`) wrapped as the broker
carries them (``{"message": Message}``...), so an event reads the same whether it arrives live
or during catch-up.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from actors.errors import Reason, WhisprError
from actors.model import Attachment

__all__ = [
    "CLIENT_EVENTS",
    "ConversationJoin",
    "CreateConversation",
    "DeleteMessage",
    "EditMessage",
    "History",
    "ListConversations",
    "MarkCursor",
    "PinMessage",
    "React",
    "SendMessage",
    "Typing",
    "decode_payload",
]


class _Payload(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of client payloads: unknown fields are refused, so typos are caught."""


class ConversationJoin(_Payload):
    """``phx_join`` of ``conversation:<id>``: ``last_seq`` asks for what was missed since."""

    last_seq: int | None = msgspec.field(default=None)


class SendMessage(_Payload):
    """``send_message``: reply ``{"id", "seq", "created_at"}`` once durable.

    ``client_id`` makes the send idempotent: a retry with the same id returns the original.
    """

    client_id: str
    kind: Literal["text", "media"] = "text"
    content: str = ""
    attachments: tuple[Attachment, ...] = ()
    reply_to: int | None = None
    metadata: dict[str, Any] = {}


class EditMessage(_Payload):
    """``edit_message``: one's own message, by seq."""

    seq: int
    content: str


class DeleteMessage(_Payload):
    """``delete_message``: ``for_everyone`` leaves a tombstone; otherwise hidden for oneself."""

    seq: int
    for_everyone: bool = True


class React(_Payload):
    """``react``: add (or with ``remove`` true, take back) one emoji reaction."""

    seq: int
    emoji: str
    remove: bool = False


class PinMessage(_Payload):
    """``pin``: pin or (``pinned`` false) unpin a message."""

    seq: int
    pinned: bool = True


class MarkCursor(_Payload):
    """``mark_read`` / ``mark_delivered``: move the cursor forward to ``seq``."""

    seq: int


class Typing(_Payload):
    """``typing_start`` / ``typing_stop``: no payload fields; broadcast as ``user_typing``."""


class History(_Payload):
    """``history``: a page of messages, ascending, before or after a seq (at most 200)."""

    before_seq: int | None = None
    after_seq: int | None = None
    limit: int = 50


class CreateConversation(_Payload):
    """``create_conversation`` on ``user:<id>``: a direct conversation with ``with_user``, or a
    group with ``title`` and ``members``."""

    kind: Literal["direct", "group"]
    with_user: str | None = None
    title: str | None = None
    members: tuple[str, ...] = ()


class ListConversations(_Payload):
    """``list_conversations`` on ``user:<id>``: a page of the user's conversations, most
    recently active first; pass the last row's ``last_message_at`` and ``id`` for the next."""

    limit: int = 50
    before: float | None = None
    before_id: str | None = None


#: Client events per topic kind, with their payload struct.
CLIENT_EVENTS: Final[dict[str, dict[str, type[_Payload]]]] = {
    "conversation": {
        "send_message": SendMessage,
        "edit_message": EditMessage,
        "delete_message": DeleteMessage,
        "react": React,
        "pin": PinMessage,
        "mark_read": MarkCursor,
        "mark_delivered": MarkCursor,
        "typing_start": Typing,
        "typing_stop": Typing,
        "history": History,
    },
    "user": {
        "create_conversation": CreateConversation,
        "list_conversations": ListConversations,
    },
    "notification": {},
}


def decode_payload(kind: type[_Payload], payload: dict[str, Any] | bytes) -> Any:
    """``payload`` (a decoded JSON object) as ``kind``; refusals are ``invalid`` errors."""
    if isinstance(payload, bytes):
        raise WhisprError(Reason.INVALID, "this event takes a JSON payload")
    try:
        return msgspec.convert(payload, kind)
    except msgspec.ValidationError as exc:
        raise WhisprError(Reason.INVALID, f"invalid payload: {exc}") from None
