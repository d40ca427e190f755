"""The business rules of a conversation: who may do what, and what is valid.

One place for each rule, used by the conversation actor and by the
messaging API; each refusal is a :class:`WhisprError` with a reason from the
shared catalogue, so WebSocket and gRPC clients get the same answer.

Who may do what by role (owner, admin, member) is one table, :mod:`actors.permissions`
(posting, pinning, deleting others' messages, every membership and group change); the rules
here that need a role ask it. Besides it: a message is edited by its sender only, deleted for
everyone by its sender or a holder of ``delete_any``; any member reacts, marks read or
delivered and reads the history. Any member sets their own settings and reads receipts,
pins and threads.

Who gets a push notification for a new message (:func:`push_recipients`): every member but
the sender, unless the member muted the conversation (until a time not yet reached) or turned
its notifications off; with ``notifications: "mentions"``, only when the message's
``metadata["mentions"]`` names the member. System messages push nobody. Members with a
device connected get the message over it instead (the caller checks that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import emoji
import msgspec

from actors import permissions, scheduling
from actors.errors import Reason, WhisprError
from actors.model import Attachment, Conversation, Draft, Member, Message

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_CLIENT_ID",
    "MAX_GROUP_MEMBERS",
    "MAX_ID",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_PAGE",
    "MAX_TITLE",
    "check_attachments",
    "check_client_id",
    "check_content",
    "check_draft",
    "check_emoji",
    "check_json_text",
    "check_metadata",
    "check_text",
    "check_title",
    "check_user_ids",
    "page_limit",
    "push_recipients",
    "require_can_post",
    "require_group",
    "require_member",
]

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 2 * 1024**3
MAX_CLIENT_ID = 64
MAX_ID = 200
"""The longest id a request may name (a user, a conversation): the stores hold no longer one."""
MAX_TITLE = 200
MAX_GROUP_MEMBERS = 1000
MAX_METADATA_BYTES = 16 * 1024
"""The most a message's metadata may weigh, as JSON (mentions, reply previews, e2e headers)."""
MAX_METADATA_DEPTH = 8
"""The deepest metadata may nest (objects and arrays), so that walking it is cheap and bounded."""
MAX_PAGE = 200
"""The most messages or conversations one page holds, whatever is asked."""
MAX_SEQ = 2**63 - 1
"""The largest seq a conversation can reach: the stores keep seqs as 64-bit integers."""
_json = msgspec.json.Encoder()


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


def require_can_post(
    conversation: Conversation, members: Mapping[str, Member], user_id: str
) -> Member:
    """Members may post, unless the group lets only its owner and admins post
    (:attr:`actors.permissions.Right.POST`)."""
    return permissions.require(conversation, members, user_id, permissions.Right.POST)


def check_text(value: str, field: str) -> None:
    """Text that both stores hold alike: no NUL character and no lone surrogate.

    Every string a client or a service gives goes through this before it reaches a
    group-commit batch or a store. PostgreSQL text and jsonb cannot hold NUL (SQLite
    would store it) nor a lone surrogate (msgspec decodes one from a JSON ``\\ud800``
    escape, and UTF-8 cannot encode it): refused here, naming the field, such a value
    never becomes a database error or a difference between the stores.
    """
    if "\x00" in value or not _encodable(value):
        raise WhisprError(
            Reason.INVALID,
            f"{field} must be valid text, without NUL characters or lone surrogates",
            field=field,
        )


def check_json_text(value: object, field: str) -> None:
    """:func:`check_text` on every string of a JSON value (keys included), at any depth.

    For a payload refused before its own checks ran (a decoder that cannot match a lone
    surrogate against a field's allowed values): the refusal still names the field.
    """
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_text(key, field)
            check_json_text(item, field)
    elif isinstance(value, list | tuple):
        for item in value:
            check_json_text(item, field)


def _encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_content(content: str, max_bytes: int) -> None:
    """Content fits the size limit (bytes of UTF-8, as clients count them) and is valid text
    (:func:`check_text`)."""
    check_text(content, "content")
    size = len(content.encode("utf-8"))
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
    check_text(client_id, "client_id")


def check_user_ids(user_ids: Sequence[str], field: str = "user_ids") -> None:
    """User ids given in a request (members to add or remove, a direct conversation's other
    user): valid text of 1 to :data:`MAX_ID` characters, refused naming the request's
    field before a store (which would name its own) or a message quoting the id sees one."""
    for user_id in user_ids:
        if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_ID:
            raise WhisprError(
                Reason.INVALID, f"{field} must hold ids of 1 to {MAX_ID} characters", field=field
            )
        check_text(user_id, field)


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """A message's metadata: valid text in every key and string at any depth, bounded
    depth (:data:`MAX_METADATA_DEPTH`) and size (:data:`MAX_METADATA_BYTES`).

    Metadata is the client's own JSON, stored as jsonb on PostgreSQL: one NUL in a key
    deep inside would otherwise be the database's refusal.
    """
    _check_json(metadata, 1)
    size = len(_json.encode(metadata))
    if size > MAX_METADATA_BYTES:
        raise WhisprError(
            Reason.TOO_LARGE,
            f"metadata is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES}",
            field="metadata",
            limit=MAX_METADATA_BYTES,
            size=size,
        )


def _check_json(value: object, depth: int) -> None:
    if isinstance(value, str):
        check_text(value, "metadata")
        return
    if not isinstance(value, dict | list | tuple):
        return
    if depth > MAX_METADATA_DEPTH:
        raise WhisprError(
            Reason.INVALID,
            f"metadata nests at most {MAX_METADATA_DEPTH} levels deep",
            field="metadata",
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise WhisprError(Reason.INVALID, "metadata keys are strings", field="metadata")
            check_text(key, "metadata")
            _check_json(item, depth + 1)
        return
    for item in value:
        _check_json(item, depth + 1)


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
    for text, name in ((item.id, "id"), (item.mime_type, "mime_type"), (item.name, "name")):
        if "\x00" in text or not _encodable(text):
            return f"{name} must be valid text, without NUL characters or lone surrogates"
    if not item.id or len(item.id) > 128:
        return "id must be 1 to 128 characters"
    mime = item.mime_type
    kind, slash, subtype = mime.partition("/")
    if not slash or not kind or not subtype or len(mime) > 127 or " " in mime:
        return f"mime_type {mime!r} is not a type/subtype"
    if not 0 < item.size <= MAX_ATTACHMENT_BYTES:
        return f"size must be between 1 and {MAX_ATTACHMENT_BYTES} bytes"
    if not item.name or len(item.name) > 255 or "/" in item.name:
        return "name must be 1 to 255 characters, without '/'"
    return None


def check_draft(draft: Draft, max_content_bytes: int, *, end_to_end: bool = False) -> None:
    """What a member's or service's draft must be, wherever it is sent or scheduled: a
    client id, content within the limit, attachments matching the kind, no metadata key only
    the server sets, and a ``ttl`` in range (:mod:`actors.scheduling`). The metadata's own
    checks (:func:`check_metadata`) run once the server added its keys.

    ``end_to_end``: a text's content is in its envelopes, which ``Messaging.send`` checked
    against the members' devices before the draft got here, so it has none of its own."""
    check_client_id(draft.client_id)
    check_content(draft.content, max_content_bytes)
    text_in_envelopes = end_to_end and draft.kind == "text"
    check_attachments(
        draft.kind, "\u2026" if text_in_envelopes else draft.content, draft.attachments
    )
    scheduling.check_no_reserved_metadata(draft.metadata)
    if draft.ttl is not None:
        scheduling.check_ttl(draft.ttl)


def check_emoji(value: str) -> None:
    """A reaction is exactly one emoji (skin tones and ZWJ sequences included)."""
    check_text(value, "emoji")
    if not value or len(value) > 32 or not emoji.is_emoji(value):
        raise WhisprError(Reason.INVALID, f"{value!r} is not an emoji", field="emoji")


def check_title(title: str | None) -> None:
    """Group titles are optional, at most 200 characters, and not blank."""
    if title is None:
        return
    if not title.strip() or len(title) > MAX_TITLE:
        raise WhisprError(
            Reason.INVALID, f"title must be 1 to {MAX_TITLE} characters", field="title"
        )
    check_text(title, "title")


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
