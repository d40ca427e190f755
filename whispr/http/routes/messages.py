"""``/api/v1/conversations/{id}/messages``: history, send, edit, delete, react, pin, threads.

Each route is the conversation channel's event (``history``, ``send_message``,
``edit_message``, ``delete_message``, ``react``, ``pin``, ``list_pins``, ``list_thread``):
the same ``Messaging`` call and the same rate limit. A send is idempotent by its client id,
which HTTP clients give as the ``Idempotency-Key`` header: sent twice, it is stored once and
both answers are the same message.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from actors import rules
from actors.errors import Reason, WhisprError
from actors.member_state import MemberStateReads
from actors.model import Draft, Message, MessageKind
from actors.search import MessageFilters
from whispr.auth import Identity
from whispr.gateway.channels.conversation import SendMessage
from whispr.http.context import HttpContext
from whispr.http.cursors import decode_cursor, encode_cursor
from whispr.http.routes.common import (
    CONVERSATION,
    MESSAGE_PROBLEMS,
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    counted,
)

__all__ = [
    "IDEMPOTENCY_KEY",
    "Edit",
    "MessagePage",
    "NewMessage",
    "client_id_of",
    "draft_of",
    "router",
]

#: The header carrying a send's client id.
IDEMPOTENCY_KEY = "Idempotency-Key"


class NewMessage(SendMessage, frozen=True, forbid_unknown_fields=True):
    """A message to send: the socket's ``send_message`` payload (text, media, a reply, a
    ``ttl``, and for an end-to-end conversation its ``envelopes`` and ``blind_tokens``,
    docs/e2e.md), whose client id may instead be the ``Idempotency-Key`` header."""

    client_id: str = ""


class Edit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A message's new content."""

    content: str


class MessagePage(msgspec.Struct, kw_only=True):
    """Messages in ascending seq; ``next`` is the ``cursor`` of the page after in the same
    direction (None: this was the last)."""

    messages: list[Message]
    next: str | None = None


def draft_of(data: NewMessage, client_id: str) -> Draft:
    """The message alone, as the conversation actor takes it, with its client id."""
    fields = {name: getattr(data, name) for name in Draft.__struct_fields__}
    return Draft(**{**fields, "client_id": client_id})


def client_id_of(header: str | None, body: str) -> str:
    """The send's client id: the ``Idempotency-Key`` header, or the body's ``client_id``
    (``""``: none given). An empty header is a client id the send's own rule refuses
    (naming ``client_id``, as the socket's refusal of an empty one does)."""
    if header is not None and body and header != body:
        raise WhisprError(
            Reason.INVALID, "Idempotency-Key and client_id differ", field=IDEMPOTENCY_KEY
        )
    client_id = header if header is not None else body
    if header is None and not body:
        raise WhisprError(
            Reason.INVALID,
            "a send needs an Idempotency-Key header (or a client_id)",
            field=IDEMPOTENCY_KEY,
        )
    return client_id


@get("/messages", summary="Read a conversation's history", responses=READ_PROBLEMS)
async def history(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    before_seq: Annotated[
        int | None, QueryParameter(description="Scroll back: the messages before this seq.")
    ] = None,
    after_seq: Annotated[
        int | None, QueryParameter(description="Catch up: the messages after this seq.")
    ] = None,
    limit: Annotated[int, QueryParameter(description="At most this many (capped at 200).")] = 50,
    cursor: Annotated[str | None, QueryParameter(description="The previous page's `next`.")] = None,
    sender_id: Annotated[
        str | None, QueryParameter(description="Only the messages of this sender.")
    ] = None,
    kind: Annotated[MessageKind | None, QueryParameter(description="Only this kind.")] = None,
    since: Annotated[
        float | None,
        QueryParameter(description="Only those sent from this time (seconds since the epoch)."),
    ] = None,
    until: Annotated[
        float | None,
        QueryParameter(description="Only those sent before this time (seconds since the epoch)."),
    ] = None,
) -> MessagePage:
    """A page of messages in ascending seq: the latest ones, those before ``before_seq``
    (scrolling back) or those after ``after_seq`` (catching up); messages the user deleted
    for themselves are left out. The filters narrow the page as the socket's ``history``
    does (a filtered page may hold fewer messages than ``limit`` before the last)."""
    if cursor is not None:
        if before_seq is not None or after_seq is not None:
            raise WhisprError(
                Reason.INVALID, "a cursor replaces before_seq and after_seq", field="cursor"
            )
        direction, seq = decode_cursor(cursor, (str, int))
        if direction == "after":
            after_seq = seq
        elif direction == "before":
            before_seq = seq
        else:
            raise WhisprError(Reason.INVALID, "not a cursor this API gave", field="cursor")
    messages = await ctx.messaging.history(
        identity.user_id,
        conversation_id,
        before_seq=before_seq,
        after_seq=after_seq,
        limit=limit,
        filters=MessageFilters(sender_id=sender_id, kind=kind, since=since, until=until),
    )
    following = None
    if messages and len(messages) >= rules.page_limit(limit):
        if after_seq is not None:
            following = encode_cursor(("after", messages[-1].seq))
        else:
            following = encode_cursor(("before", messages[0].seq))
    return MessagePage(messages=messages, next=following)


@post(
    "/messages", summary="Send a message", status_code=HTTP_201_CREATED, responses=MESSAGE_PROBLEMS
)
async def send_message(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[NewMessage],
    idempotency_key: Annotated[
        str | None,
        HeaderParameter(
            name=IDEMPOTENCY_KEY,
            description="The message's client id: a retry with the same key is not sent "
            "again, and gets the same message.",
        ),
    ] = None,
) -> Message:
    """Send a message; answered once it is durable, with its seq. A retry with the same
    ``Idempotency-Key`` answers the message stored the first time. In an end-to-end
    conversation the body carries one envelope per recipient device (``envelopes``), sent
    from the token's device."""
    draft = draft_of(data, client_id_of(idempotency_key, data.client_id))
    await counted(ctx, identity, "conversation", "send_message")
    return await ctx.messaging.send(
        identity.user_id, conversation_id, draft, device_id=identity.device_id
    )


@patch("/messages/{seq:int}", summary="Edit one's message", responses=WRITE_PROBLEMS)
async def edit_message(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
    data: JSONBody[Edit],
) -> Message:
    """Change the content of one's own message."""
    await counted(ctx, identity, "conversation", "edit_message")
    return await ctx.messaging.edit(identity.user_id, conversation_id, seq, data.content)


@delete(
    "/messages/{seq:int}",
    summary="Delete a message",
    status_code=HTTP_204_NO_CONTENT,
    responses=WRITE_PROBLEMS,
)
async def delete_message(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
    for_everyone: Annotated[
        bool, QueryParameter(description="Leave a tombstone for everyone (else: hide it for me).")
    ] = True,
) -> None:
    """Delete a message for everyone (as one's role allows), or hide it for oneself."""
    await counted(ctx, identity, "conversation", "delete_message")
    if for_everyone:
        await ctx.messaging.delete(identity.user_id, conversation_id, seq)
    else:
        await ctx.messaging.hide(identity.user_id, conversation_id, seq)


@put("/messages/{seq:int}/reactions/{emoji:str}", summary="React", responses=WRITE_PROBLEMS)
async def add_reaction(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
    emoji: FromPath[str],
) -> Message:
    """Add one's reaction (an emoji, URL-encoded in the path) to a message."""
    await counted(ctx, identity, "conversation", "react")
    return await ctx.messaging.react(identity.user_id, conversation_id, seq, emoji, add=True)


@delete(
    "/messages/{seq:int}/reactions/{emoji:str}",
    summary="Take a reaction back",
    status_code=200,
    responses=WRITE_PROBLEMS,
)
async def remove_reaction(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
    emoji: FromPath[str],
) -> Message:
    """Remove one's reaction from a message."""
    await counted(ctx, identity, "conversation", "react")
    return await ctx.messaging.react(identity.user_id, conversation_id, seq, emoji, add=False)


@put("/messages/{seq:int}/pin", summary="Pin a message", responses=WRITE_PROBLEMS)
async def pin_message(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
) -> Message:
    """Pin a message (as one's role allows)."""
    await counted(ctx, identity, "conversation", "pin")
    return await ctx.messaging.pin(identity.user_id, conversation_id, seq, pinned=True)


@delete(
    "/messages/{seq:int}/pin",
    summary="Unpin a message",
    status_code=200,
    responses=WRITE_PROBLEMS,
)
async def unpin_message(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
) -> Message:
    """Unpin a message."""
    await counted(ctx, identity, "conversation", "pin")
    return await ctx.messaging.pin(identity.user_id, conversation_id, seq, pinned=False)


@get("/pins", summary="List the pinned messages", responses=READ_PROBLEMS)
async def list_pins(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
) -> MessagePage:
    """The conversation's pinned messages, by seq."""
    pins = await MemberStateReads(ctx.messaging.deps.store).pins(identity.user_id, conversation_id)
    return MessagePage(messages=pins)


@get("/messages/{seq:int}/replies", summary="Read a thread", responses=READ_PROBLEMS)
async def list_thread(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    seq: FromPath[int],
    after_seq: Annotated[int, QueryParameter(description="The replies after this seq.")] = 0,
    limit: Annotated[int, QueryParameter(description="At most this many (capped at 200).")] = 50,
) -> MessagePage:
    """The replies to message ``seq``, ascending; pass the last reply's seq as
    ``after_seq`` for the next page (``next`` says it)."""
    rules.check_position(seq, "seq")
    replies = await MemberStateReads(ctx.messaging.deps.store).thread(
        identity.user_id, conversation_id, seq, after_seq=after_seq, limit=limit
    )
    following = None
    if replies and len(replies) >= rules.page_limit(limit):
        following = encode_cursor(("after", replies[-1].seq))
    return MessagePage(messages=replies, next=following)


router = Router(
    CONVERSATION,
    route_handlers=[
        history,
        send_message,
        edit_message,
        delete_message,
        add_reaction,
        remove_reaction,
        pin_message,
        unpin_message,
        list_pins,
        list_thread,
    ],
    tags=["messages"],
)
