"""The business rules of a conversation: who may do what, and what is valid.

One place for each rule, used by the conversation actor and by the
messaging API; each refusal is a :class:`WhisprError` with a reason from the
shared catalogue, so WebSocket and gRPC clients get the same answer.

Roles, from most to least powerful: owner, admin, member.

| action | direct | group |
| --- | --- | --- |
| post | both members | members, or only owner/admins when ``who_can_post`` is ``admins`` |
| edit a message | its sender | its sender |
| delete a message for everyone | its sender | its sender, owner, admins |
| react, mark read/delivered, read history | members | members |
| pin / unpin | both members | owner, admins |
| add members | nobody | owner, admins |
| remove a member | nobody | owner (anyone), admins (plain members) |
| leave | nobody | anyone |

Who gets a push notification for a new message (:func:`push_recipients`): every member but
the sender, unless the member muted the conversation (until a time not yet reached) or turned
its notifications off; with ``notifications: "mentions"``, only when the message's
``metadata["mentions"]`` names the member. System messages push nobody. Members with a
device connected get the message over it instead (the caller checks that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import emoji

from actors.errors import Reason, WhisprError
from actors.model import Attachment, Conversation, Member, Message

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_CLIENT_ID",
    "MAX_GROUP_MEMBERS",
    "MAX_PAGE",
    "MAX_TITLE",
    "check_attachments",
    "check_client_id",
    "check_content",
    "check_emoji",
    "check_title",
    "page_limit",
    "push_recipients",
    "require_admin",
    "require_can_post",
    "require_group",
    "require_member",
]

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 2 * 1024**3
MAX_CLIENT_ID = 64
MAX_TITLE = 200
MAX_GROUP_MEMBERS = 1000
MAX_PAGE = 200
"""The most messages or conversations one page holds, whatever is asked."""
MAX_SEQ = 2**63 - 1
"""The largest seq a conversation can reach: the stores keep seqs as 64-bit integers."""
_ADMINS = frozenset({"owner", "admin"})


def require_member(members: Mapping[str, Member], user_id: str) -> Member:
    """The member record of ``user_id``, or ``not_member``."""
    member = members.get(user_id)
    if member is None:
        raise WhisprError(Reason.NOT_MEMBER, "you are not a member of this conversation")
    return member


def require_group(conversation: Conversation) -> None:
    """Membership of a direct conversation never changes."""
    if conversation.kind == "direct":
        raise WhisprError(Reason.FORBIDDEN, "a direct conversation cannot be changed")


def require_admin(
    conversation: Conversation, members: Mapping[str, Member], user_id: str
) -> Member:
    """Owners and admins of a group only."""
    member = require_member(members, user_id)
    require_group(conversation)
    if member.role not in _ADMINS:
        raise WhisprError(Reason.FORBIDDEN, "only the owner and admins may do this")
    return member


def require_can_post(
    conversation: Conversation, members: Mapping[str, Member], user_id: str
) -> Member:
    """Members may post, unless the group lets only its owner and admins post."""
    member = require_member(members, user_id)
    if conversation.settings.get("who_can_post") == "admins" and member.role not in _ADMINS:
        raise WhisprError(Reason.FORBIDDEN, "only the owner and admins may post here")
    return member


def check_content(content: str, max_bytes: int) -> None:
    """Content fits the size limit (bytes of UTF-8, as clients count them) and has no NUL.

    NUL is refused because PostgreSQL text cannot hold it: one such message
    would fail the whole group-commit batch it joined.
    """
    if "\x00" in content:
        raise WhisprError(
            Reason.INVALID, "content must not contain NUL characters", field="content"
        )
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise WhisprError(
            Reason.TOO_LARGE,
            f"content is {size} bytes; the limit is {max_bytes}",
            limit=max_bytes,
            size=size,
        )


def check_client_id(client_id: str) -> None:
    """A client id is what makes a retried send idempotent: it must be present and short."""
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        raise WhisprError(
            Reason.INVALID, f"client_id must be 1 to {MAX_CLIENT_ID} characters", field="client_id"
        )


def check_attachments(kind: str, content: str, attachments: Sequence[Attachment]) -> None:
    """Text needs content and no attachments; media needs 1 to 10 valid attachments."""
    if kind == "text":
        if attachments:
            raise WhisprError(Reason.INVALID, "a text message has no attachments", field="kind")
        if not content:
            raise WhisprError(Reason.INVALID, "a text message needs content", field="content")
        return
    if kind != "media":
        raise WhisprError(Reason.INVALID, f"clients cannot send {kind!r} messages", field="kind")
    if not 1 <= len(attachments) <= MAX_ATTACHMENTS:
        raise WhisprError(
            Reason.INVALID,
            f"a media message has 1 to {MAX_ATTACHMENTS} attachments",
            field="attachments",
        )
    for index, item in enumerate(attachments):
        problem = _attachment_problem(item)
        if problem is not None:
            raise WhisprError(
                Reason.INVALID, f"attachment {index}: {problem}", field="attachments", index=index
            )


def _attachment_problem(item: Attachment) -> str | None:
    if not item.id or len(item.id) > 128:
        return "id must be 1 to 128 characters"
    mime = item.mime_type
    kind, slash, subtype = mime.partition("/")
    if not slash or not kind or not subtype or len(mime) > 127 or " " in mime:
        return f"mime_type {mime!r} is not a type/subtype"
    if not 0 < item.size <= MAX_ATTACHMENT_BYTES:
        return f"size must be between 1 and {MAX_ATTACHMENT_BYTES} bytes"
    if not item.name or len(item.name) > 255 or "/" in item.name or "\x00" in item.name:
        return "name must be 1 to 255 characters, without '/'"
    return None


def check_emoji(value: str) -> None:
    """A reaction is exactly one emoji (skin tones and ZWJ sequences included)."""
    if not value or len(value) > 32 or not emoji.is_emoji(value):
        raise WhisprError(Reason.INVALID, f"{value!r} is not an emoji", field="emoji")


def check_title(title: str | None) -> None:
    """Group titles are optional, at most 200 characters, and not blank."""
    if title is not None and (not title.strip() or len(title) > MAX_TITLE):
        raise WhisprError(
            Reason.INVALID, f"title must be 1 to {MAX_TITLE} characters", field="title"
        )


def check_position(value: object, field: str) -> int:
    """A seq given as a position or a bound (``last_seq``, ``after_seq``, a cursor, ``seq``).

    0 (before the first message) to :data:`MAX_SEQ`: every layer checks it here, before a
    value a store cannot hold reaches one (``invalid``, naming the field).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise WhisprError(
            Reason.INVALID, f"{field} must be an integer from 0 to {MAX_SEQ}", field=field
        )
    return value


def page_limit(limit: object) -> int:
    """The page size to read for a requested ``limit``: at least 1, capped at :data:`MAX_PAGE`.

    For every reader of pages (history, catch-up, conversation lists) and the store
    boundary, so that a request for more than a page is served a full page, never refused.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise WhisprError(Reason.INVALID, "limit must be at least 1", field="limit")
    return min(limit, MAX_PAGE)


def push_recipients(members: Mapping[str, Member], message: Message, now: float) -> list[str]:
    """The members a new message may be pushed to (see the module's docstring)."""
    if message.kind == "system":
        return []
    mentions = message.metadata.get("mentions")
    mentioned = set(mentions) if isinstance(mentions, list) else set()
    recipients = []
    for user_id, member in members.items():
        if user_id == message.sender_id or member.notifications == "none":
            continue
        if member.muted_until is not None and member.muted_until > now:
            continue
        if member.notifications == "mentions" and user_id not in mentioned:
            continue
        recipients.append(user_id)
    return recipients
