"""The domain's records, one msgspec struct each: the single definition of each.

Times are float seconds since the epoch everywhere. Structs are frozen: an
actor hands them to other actors and to the broker without copying, and
nobody can change one behind its owner's back.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from actors.e2e.model import Envelope

__all__ = [
    "Attachment",
    "Conversation",
    "ConversationSummary",
    "DeliveryCursor",
    "Draft",
    "InsertResult",
    "Member",
    "MembershipChange",
    "Message",
    "Unsequenced",
]

ConversationKind = Literal["direct", "group"]
Role = Literal["owner", "admin", "member"]
Notifications = Literal["all", "mentions", "none"]
MessageKind = Literal["text", "media", "system"]


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    """A direct conversation (exactly two members) or a group."""

    id: str
    kind: ConversationKind
    title: str | None = None
    avatar: str | None = None
    #: A group's description (update_conversation); None when unset.
    description: str | None = None
    created_by: str
    created_at: float
    last_seq: int = 0
    last_message_at: float | None = None
    settings: dict[str, Any] = {}


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """One user's membership: role, notification settings, read cursor."""

    conversation_id: str
    user_id: str
    role: Role
    joined_at: float
    muted_until: float | None = None
    notifications: Notifications = "all"
    read_seq: int = 0
    #: The member archived the conversation (their own view; clients list it apart).
    archived: bool = False
    #: Its place among the member's pinned conversations, lower first; None: not pinned.
    pin_order: int | None = None


class MembershipChange(msgspec.Struct, frozen=True, kw_only=True):
    """A member added (a group's creation included), removed, leaving, or given a new role,
    once the store has it: what the node's audit log records."""

    conversation_id: str
    user_id: str
    change: Literal["added", "removed", "left", "role_changed"]
    #: Who made the change: a member, ``service:<name>``, or the system (a handover).
    by: str
    #: The member's role after the change (None once removed).
    role: Role | None


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A reference to media held by the media service, with its metadata."""

    id: str
    mime_type: str
    size: int
    name: str


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message; ``seq`` orders a conversation, ``client_id`` makes sends idempotent.

    ``content`` is opaque: clients that encrypt end to end send ciphertext
    and set ``metadata["e2e"] = True``.
    """

    conversation_id: str
    seq: int
    id: str
    client_id: str
    sender_id: str
    kind: MessageKind
    content: str = ""
    attachments: tuple[Attachment, ...] = ()
    reply_to: int | None = None
    created_at: float
    edited_at: float | None = None
    deleted: bool = False
    reactions: dict[str, tuple[str, ...]] = {}
    pinned: bool = False
    metadata: dict[str, Any] = {}


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """A message as a client sends it, before the server gives it a seq.

    The WebSocket API's ``send_message`` payload is this struct (a subclass that refuses
    unknown fields and the ``system`` kind), so a client's send reaches the actor as is.
    """

    client_id: str
    kind: MessageKind = "text"
    content: str = ""
    attachments: tuple[Attachment, ...] = ()
    reply_to: int | None = None
    metadata: dict[str, Any] = {}
    #: Seconds the message lives before it disappears for everyone (actors/scheduling.py);
    #: None: as long as the conversation's setting says (forever without one).
    ttl: int | None = None
    #: End to end: one ciphertext per recipient device (actors/e2e/), checked and stored by
    #: ``Messaging.send`` before the actor sees the draft; carried by the live event only.
    envelopes: tuple[Envelope, ...] = ()
    #: End to end: blind-index tokens of the message's words (actors/e2e/blind.py).
    blind_tokens: tuple[bytes, ...] = ()


class Unsequenced(Message, frozen=True, kw_only=True, omit_defaults=True):
    """A message for the store to sequence: it gets the next ``seq`` when it is written.

    What a conversation actor submits for a send. The store takes the
    conversation's row lock, skips it if its sender already stored its client
    id (``duplicate``), and otherwise gives it ``last_seq + 1`` in the same
    transaction; so seqs stay gap-free whoever else writes, nobody loses a
    race for a seq, and several sends of one actor can be in one batch. Its
    ``seq`` is ignored (0); the result carries a plain :class:`Message` with
    the seq it got. Encoded, it leaves out the fields at their defaults
    (the store sends a batch to PostgreSQL as JSON).
    """

    seq: int = 0
    #: The sender is the system or a sibling service, not a member. Otherwise the store
    #: writes the message only if its sender is a member when the batch is written, under
    #: the conversation's row lock that a removal takes too: once a removal has committed,
    #: no message of the removed member is accepted, whatever a node's cache still says.
    trusted_sender: bool = False
    #: End to end: the conversation's membership version its envelopes were checked against
    #: (``Store.versioned_members``). The store writes it only if that is still the version
    #: when the batch is written, under the conversation's row lock that every change of
    #: members takes too; else ``members_changed``. None (plain sends): not asked.
    member_version: int | None = None


class ConversationSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A row of a user's conversation list."""

    conversation: Conversation
    role: Role
    last_message: Message | None
    unread_count: int
    #: The unread messages that mention the user (``metadata.mentions``, actors/mentions.py).
    mention_count: int = 0


class DeliveryCursor(msgspec.Struct, frozen=True, kw_only=True):
    """How far one device of a user has received a conversation.

    Per device, unlike the read cursor (per user): "delivered" means a
    device has the message, and a user's phone can be behind their laptop.
    It only moves forward, so a late acknowledgement cannot undo a newer one.
    """

    conversation_id: str
    user_id: str
    device_id: str
    delivered_seq: int


class InsertResult(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one message of a group-commit batch.

    ``inserted``: it is durable as given. ``duplicate``: the sender's client
    id was already stored; ``message`` is the original. ``seq_conflict``:
    another writer took that seq; nothing was written. ``invalid``: the store
    refused this message alone (``detail`` says why, in Whispr's words, and
    ``field`` names the field when known); the rest of the batch was written
    without it. ``not_member``: the sender was not a member when the batch was
    written (removed meanwhile); nothing was written for it. ``members_changed``: the
    members changed since the version the message was checked against
    (``Unsequenced.member_version``); nothing was written for it.
    """

    status: Literal[
        "inserted", "duplicate", "seq_conflict", "invalid", "not_member", "members_changed"
    ]
    message: Message
    detail: str = ""
    field: str | None = None
