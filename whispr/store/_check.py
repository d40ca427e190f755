"""Checks at the store boundary, the same for both backends.

The actors enforce the rules (who may post, how long a message may be);
these checks only keep values that can never be valid out of the database,
so that a bug upstream is a clear ``WhisprError(invalid)`` naming the field,
raised before anything is written, rather than a row that breaks ordering
(a NaN time), paging (a seq of 0) or decoding (an unknown kind) later.
The database's CHECK constraints back up what they can express; these run
first so that both backends refuse the same things with the same error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, get_args

from actors import rules
from actors.errors import Reason, WhisprError
from actors.member_settings import MAX_PIN_ORDER
from actors.model import (
    Attachment,
    Conversation,
    ConversationKind,
    Member,
    Message,
    MessageKind,
    Notifications,
    Role,
    Unsequenced,
)
from actors.scheduling import EXPIRES_AT

__all__ = [
    "MAX_ID_LENGTH",
    "conversation",
    "conversation_fields",
    "cursor",
    "direct_pair",
    "edit",
    "member_fields",
    "member_view",
    "members",
    "messages",
    "name",
    "time",
]

MAX_ID_LENGTH = rules.MAX_ID
"""Ids are the node's (``actors.ids``), user ids from the auth service, client keys: all short."""

_MESSAGE_KINDS = frozenset(get_args(MessageKind))
_CONVERSATION_KINDS = frozenset(get_args(ConversationKind))
_ROLES = frozenset(get_args(Role))
_NOTIFICATIONS = frozenset(get_args(Notifications))


def name(value: Any, field: str) -> None:
    """An id or a name: a non-empty string of bounded length."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise WhisprError(
            Reason.INVALID,
            f"{field} must be a string of 1 to {MAX_ID_LENGTH} characters",
            field=field,
        )
    _text(value, field)


def _text(value: str, field: str) -> None:
    # One rule for the actors and both stores (rules.check_text): NUL and lone
    # surrogates are refused naming the field, never left to the database.
    rules.check_text(value, field)


def _time(value: Any, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WhisprError(
            Reason.INVALID, f"{field} must be a finite number of seconds", field=field
        )


def time(value: Any, field: str) -> None:
    """A finite number of seconds (a schedule's time)."""
    _time(value, field)


def _seq(value: Any, field: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WhisprError(
            Reason.INVALID, f"{field} must be an integer of at least {minimum}", field=field
        )


def cursor(value: Any, field: str = "seq") -> None:
    """A read or delivered cursor, or a paging bound: 0 (nothing yet) or a seq."""
    rules.check_position(value, field)


def direct_pair(user_a: Any, user_b: Any, now: Any) -> None:
    """Two distinct users: a direct conversation with oneself is not one."""
    name(user_a, "user_a")
    name(user_b, "user_b")
    _time(now, "now")
    if user_a == user_b:
        raise WhisprError(
            Reason.INVALID, "a direct conversation needs two different users", field="user_b"
        )


def member_fields(role: Any, notifications: Any, muted_until: Any) -> None:
    """The settable fields of a membership (``None`` for a field left unchanged)."""
    if role is not None and role not in _ROLES:
        raise WhisprError(Reason.INVALID, f"role must be one of {sorted(_ROLES)}", field="role")
    if notifications is not None and notifications not in _NOTIFICATIONS:
        raise WhisprError(
            Reason.INVALID,
            f"notifications must be one of {sorted(_NOTIFICATIONS)}",
            field="notifications",
        )
    _time(muted_until, "muted_until", optional=True)


def member_view(archived: Any, pin_order: Any) -> None:
    """A member's own view of a conversation (``None`` for a field left unchanged)."""
    if archived is not None and not isinstance(archived, bool):
        raise WhisprError(Reason.INVALID, "archived must be true or false", field="archived")
    if pin_order is not None and (
        isinstance(pin_order, bool)
        or not isinstance(pin_order, int)
        or not 0 <= pin_order <= MAX_PIN_ORDER
    ):
        raise WhisprError(
            Reason.INVALID,
            f"pin_order must be an integer from 0 to {MAX_PIN_ORDER}",
            field="pin_order",
        )


def members(items: Sequence[Member]) -> None:
    """New memberships: ids, a known role and notification setting, a sane cursor."""
    for m in items:
        name(m.conversation_id, "conversation_id")
        name(m.user_id, "user_id")
        member_fields(m.role, m.notifications, m.muted_until)
        member_view(m.archived, m.pin_order)
        _time(m.joined_at, "joined_at")
        cursor(m.read_seq, "read_seq")


def conversation_fields(title: Any, avatar: Any, settings: Any, description: Any = None) -> None:
    """The settable fields of a conversation; pass ``None`` for a title, avatar or
    description cleared or left alone, and ``{}`` for settings left alone."""
    for value, field in ((title, "title"), (avatar, "avatar"), (description, "description")):
        if value is not None:
            if not isinstance(value, str):
                raise WhisprError(Reason.INVALID, f"{field} must be a string or null", field=field)
            _text(value, field)
    if not isinstance(settings, dict):
        raise WhisprError(Reason.INVALID, "settings must be an object", field="settings")


def conversation(c: Conversation, items: Sequence[Member]) -> None:
    """A new conversation and its first members, all of it."""
    name(c.id, "id")
    name(c.created_by, "created_by")
    if c.kind not in _CONVERSATION_KINDS:
        raise WhisprError(
            Reason.INVALID, f"kind must be one of {sorted(_CONVERSATION_KINDS)}", field="kind"
        )
    _time(c.created_at, "created_at")
    _time(c.last_message_at, "last_message_at", optional=True)
    cursor(c.last_seq, "last_seq")
    conversation_fields(c.title, c.avatar, c.settings)
    if any(m.conversation_id != c.id for m in items):
        raise WhisprError(
            Reason.INVALID, "every member must belong to the conversation created", field="members"
        )
    members(items)


def messages(batch: Sequence[Message]) -> None:
    """A group-commit batch: every message well formed, or none is written.

    One malformed message fails the whole batch rather than being dropped:
    it can only come from a bug, and a result status for it would be read
    by the caller as something to retry.
    """
    isfinite = math.isfinite
    for m in batch:
        # The common case in one expression (group commit checks every
        # message of every batch); anything unusual takes the checks below,
        # which name the field.
        reply_to = m.reply_to
        if (
            _plain_name(m.conversation_id)
            and _plain_name(m.id)
            and _plain_name(m.client_id)
            and _plain_name(m.sender_id)
            and m.kind in _MESSAGE_KINDS
            and type(m.content) is str
            and _plain_text(m.content)
            and not m.attachments
            and type(m.created_at) is float
            and isfinite(m.created_at)
            and type(m.metadata) is dict
            and not m.metadata
            and (reply_to is None or (type(reply_to) is int and reply_to >= 1))
            and (
                type(m) is Unsequenced
                or (type(m.seq) is int and m.seq >= 1 and (reply_to is None or reply_to < m.seq))
            )
        ):
            continue
        name(m.conversation_id, "conversation_id")
        name(m.id, "id")
        name(m.client_id, "client_id")
        name(m.sender_id, "sender_id")
        sequenced = type(m) is not Unsequenced  # the store gives it a seq after the last
        if sequenced:
            _seq(m.seq, "seq", 1)
        if m.kind not in _MESSAGE_KINDS:
            raise WhisprError(
                Reason.INVALID, f"kind must be one of {sorted(_MESSAGE_KINDS)}", field="kind"
            )
        if not isinstance(m.content, str):
            raise WhisprError(Reason.INVALID, "content must be a string", field="content")
        _text(m.content, "content")
        if m.reply_to is not None:
            _seq(m.reply_to, "reply_to", 1)
            if sequenced and m.reply_to >= m.seq:
                raise WhisprError(
                    Reason.INVALID, "reply_to must name an earlier message", field="reply_to"
                )
        _time(m.created_at, "created_at")
        if not isinstance(m.metadata, dict):
            raise WhisprError(Reason.INVALID, "metadata must be an object", field="metadata")
        rules.check_metadata(m.metadata)
        if EXPIRES_AT in m.metadata:  # read by the store as a number (its expiry row)
            _time(m.metadata[EXPIRES_AT], "metadata")
        _attachments(m.attachments)


def _attachments(items: Sequence[Attachment]) -> None:
    """Attachments' text, as the rules check it (their other limits are the actors')."""
    for item in items:
        for value, field in ((item.id, "id"), (item.mime_type, "mime_type"), (item.name, "name")):
            if not isinstance(value, str):
                raise WhisprError(
                    Reason.INVALID, f"attachment {field} must be a string", field="attachments"
                )
            _text(value, "attachments")


def _plain_name(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_ID_LENGTH and _plain_text(value)


def _plain_text(value: str) -> bool:
    """The fast path's :func:`rules.check_text`: ASCII without NUL, the common case."""
    return value.isascii() and "\x00" not in value


def edit(content: Any, edited_at: Any) -> None:
    """New content for an existing message, and when it changed."""
    if not isinstance(content, str):
        raise WhisprError(Reason.INVALID, "content must be a string", field="content")
    _text(content, "content")
    _time(edited_at, "edited_at")
