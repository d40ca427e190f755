"""Domain records (msgspec structs) as protobuf messages, and back.

One function per record, so that every RPC shows a conversation, a member or
a message the same way. Protobuf has no "unset" for scalars: absent optional
values travel as their zero (an empty title, ``reply_to`` 0, ``edited_at``
0), as the proto file documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from google.protobuf import json_format, struct_pb2

from actors.model import Attachment, Conversation, Member, Message
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb

__all__ = [
    "conversation_to_pb",
    "kind_from_pb",
    "member_to_pb",
    "message_to_pb",
    "struct_from_dict",
    "struct_to_dict",
]

_KINDS: dict[str, Any] = {
    "direct": pb.CONVERSATION_KIND_DIRECT,
    "group": pb.CONVERSATION_KIND_GROUP,
}
_KIND_NAMES: dict[Any, str] = {value: name for name, value in _KINDS.items()}


def kind_from_pb(kind: int) -> str | None:
    """``"direct"``/``"group"``, or None for an unspecified or unknown kind."""
    return _KIND_NAMES.get(kind)


def struct_from_dict(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """A JSON-like mapping (structs inside allowed) as a ``google.protobuf.Struct``."""
    struct = struct_pb2.Struct()
    if values:
        struct.update(msgspec.to_builtins(values))
    return struct


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as a plain dict (numbers come back as floats)."""
    result: dict[str, Any] = json_format.MessageToDict(struct)
    return result


def conversation_to_pb(conversation: Conversation, last_seq: int | None = None) -> pb.Conversation:
    return pb.Conversation(
        id=conversation.id,
        kind=_KINDS[conversation.kind],
        title=conversation.title or "",
        avatar=conversation.avatar or "",
        created_by=conversation.created_by,
        created_at=conversation.created_at,
        last_seq=conversation.last_seq if last_seq is None else last_seq,
        settings=struct_from_dict(conversation.settings),
    )


def member_to_pb(member: Member) -> pb.Member:
    return pb.Member(
        user_id=member.user_id,
        role=member.role,
        joined_at=member.joined_at,
        read_seq=member.read_seq,
    )


def _attachment_to_pb(attachment: Attachment) -> pb.Attachment:
    return pb.Attachment(
        id=attachment.id,
        mime_type=attachment.mime_type,
        size=attachment.size,
        name=attachment.name,
    )


def message_to_pb(message: Message | Mapping[str, Any]) -> pb.Message:
    """A message, or its JSON form as the broker carries it."""
    if not isinstance(message, Message):
        message = msgspec.convert(message, Message)
    return pb.Message(
        id=message.id,
        conversation_id=message.conversation_id,
        seq=message.seq,
        client_id=message.client_id,
        sender_id=message.sender_id,
        kind=message.kind,
        content=message.content,
        attachments=[_attachment_to_pb(a) for a in message.attachments],
        reply_to=message.reply_to or 0,
        created_at=message.created_at,
        edited_at=message.edited_at or 0.0,
        deleted=message.deleted,
        metadata=struct_from_dict(message.metadata),
    )
