"""``/api/v1/conversations/{id}/read``, ``/delivered`` and ``/receipts``: read and delivery
marks, and every member's receipts.

The marks are the conversation channel's ``mark_read`` and ``mark_delivered`` (the delivered
mark is the token's device's), the receipts its ``get_receipts``: the same calls, so the
user's other devices and the conversation's members hear of a mark made over HTTP as they
do of one made over the socket.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from actors.member_state import MemberStateReads, Receipt
from whispr.auth import Identity
from whispr.http.context import HttpContext
from whispr.http.routes.common import CONVERSATION, READ_PROBLEMS, WRITE_PROBLEMS

__all__ = ["Mark", "Receipts", "router"]


class Mark(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A cursor to move forward to: the seq read (or received) up to."""

    seq: FromPath[int]


class Receipts(msgspec.Struct, kw_only=True):
    """How far each member has read and received."""

    receipts: list[Receipt]


@put("/read", summary="Mark as read", responses=WRITE_PROBLEMS)
async def mark_read(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[Mark],
) -> Mark:
    """Move the user's read cursor forward (never back; capped at the last message); the
    answer is where it is now."""
    cursor = await ctx.messaging.mark_read(identity.user_id, conversation_id, data.seq)
    return Mark(seq=cursor)


@put("/delivered", summary="Mark as delivered", responses=WRITE_PROBLEMS)
async def mark_delivered(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[Mark],
) -> Mark:
    """Move the delivered cursor of the token's device forward; the answer is where it is."""
    cursor = await ctx.messaging.mark_delivered(
        identity.user_id, identity.device_id, conversation_id, data.seq
    )
    return Mark(seq=cursor)


@get("/receipts", summary="Read the members' receipts", responses=READ_PROBLEMS)
async def get_receipts(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    user_id: Annotated[str | None, QueryParameter(description="One member's receipt only.")] = None,
) -> Receipts:
    """Every member's read and delivered seqs, or one member's."""
    receipts = await MemberStateReads(ctx.messaging.deps.store).receipts(
        identity.user_id, conversation_id, user_id
    )
    return Receipts(receipts=receipts)


router = Router(
    CONVERSATION, route_handlers=[mark_read, mark_delivered, get_receipts], tags=["receipts"]
)
