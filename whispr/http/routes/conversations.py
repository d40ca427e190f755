"""``/api/v1/conversations``: the user's conversation list, one conversation, create, update.

The list is ``list_conversations`` of the ``user:<id>`` channel, a conversation is the
conversation channel's join reply, creation is ``create_conversation`` and an update is
``update_conversation``: the same ``Messaging`` calls, the same rate limit on creation.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_304_NOT_MODIFIED

from actors import rules
from actors.admin import ConversationChanges
from actors.errors import Reason, WhisprError
from actors.model import Conversation, ConversationSummary
from whispr.auth import Identity
from whispr.http.context import HttpContext
from whispr.http.cursors import decode_cursor, encode_cursor
from whispr.http.problems import problems
from whispr.http.routes.common import READ_PROBLEMS, WRITE_PROBLEMS, counted

__all__ = ["ConversationPage", "CreateConversation", "router"]


class CreateConversation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A direct conversation with ``with_user``, or a group with ``title`` and ``members``
    (the ``create_conversation`` payload of ``user:<id>``)."""

    kind: Literal["direct", "group"]
    with_user: str | None = None
    title: str | None = None
    members: tuple[str, ...] = ()


class UpdateConversation(ConversationChanges, frozen=True, forbid_unknown_fields=True):
    """Any of ``title``, ``avatar``, ``description`` (``null`` clears) and ``settings``
    (``who_can_post``, ``who_can_add``)."""


class ConversationPage(msgspec.Struct, kw_only=True):
    """A page of the user's conversations, most recently active first; ``next`` is the
    ``cursor`` of the page after (None: this was the last)."""

    conversations: list[ConversationSummary]
    next: str | None = None


def etag_of(conversation: Conversation) -> str:
    """A strong validator of a conversation as served (its fields and last seq)."""
    digest = hashlib.blake2b(msgspec.json.encode(conversation), digest_size=12).hexdigest()
    return f'"{digest}"'


@get(
    "/",
    summary="List the user's conversations",
    responses=problems(400, 401, 403, 429, 503),
)
async def list_conversations(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    limit: Annotated[int, QueryParameter(description="At most this many (capped at 200).")] = 50,
    cursor: Annotated[str | None, QueryParameter(description="The previous page's `next`.")] = None,
) -> ConversationPage:
    """Most recently active first, with unread and mention counts."""
    before: float | None = None
    before_id: str | None = None
    if cursor is not None:
        before, before_id = decode_cursor(cursor, (float, str))
    summaries = await ctx.messaging.list_conversations(
        identity.user_id, limit=limit, before=before, before_id=before_id
    )
    following = None
    if summaries and len(summaries) >= rules.page_limit(limit):
        last = summaries[-1]
        at = last.conversation.last_message_at or last.conversation.created_at
        following = encode_cursor((at, last.conversation.id))
    return ConversationPage(conversations=summaries, next=following)


@get(
    "/{conversation_id:str}",
    summary="Get a conversation",
    responses=READ_PROBLEMS,
)
async def get_conversation(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    request: Request[Any, Any, Any],
    conversation_id: FromPath[str],
) -> Response[Conversation | None]:
    """A conversation the user is a member of, with its last seq. Sends an ``ETag``; with a
    matching ``If-None-Match``, answers 304 and no body."""
    conversation, head = await ctx.messaging.conversation_at(identity.user_id, conversation_id)
    conversation = msgspec.structs.replace(conversation, last_seq=head)
    etag = etag_of(conversation)
    if etag in _tags(request.headers.get("if-none-match")):
        return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return Response(conversation, status_code=HTTP_200_OK, headers={"ETag": etag})


@post(
    "/",
    summary="Create a conversation",
    status_code=HTTP_201_CREATED,
    responses=WRITE_PROBLEMS,
)
async def create_conversation(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    data: JSONBody[CreateConversation],
) -> Conversation:
    """A direct conversation (the existing one, if the two users have one already) or a new
    group owned by the user; the ``create_conversation`` event of ``user:<id>``."""
    await counted(ctx, identity, "user", "create_conversation")
    messaging, user_id = ctx.messaging, identity.user_id
    if data.with_user is not None:  # valid text even where it is not used (a group)
        rules.check_user_ids([data.with_user], "with_user")
    if data.kind == "direct":
        if not data.with_user:
            raise WhisprError(
                Reason.INVALID, "a direct conversation needs with_user", field="with_user"
            )
        return await messaging.direct(user_id, data.with_user, field="with_user")
    return await messaging.create_group(user_id, data.title, data.members, field="members")


@patch(
    "/{conversation_id:str}",
    summary="Update a group's profile or settings",
    responses=WRITE_PROBLEMS,
)
async def update_conversation(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[UpdateConversation],
) -> Conversation:
    """Change a group's title, avatar, description or settings (a field left out stays as it
    is); the ``update_conversation`` event, with the same rights."""
    return await ctx.messaging.update_conversation(identity.user_id, conversation_id, data)


def _tags(header: str | None) -> set[str]:
    if header is None:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


router = Router(
    "/conversations",
    route_handlers=[list_conversations, create_conversation, get_conversation, update_conversation],
    tags=["conversations"],
)
