"""``/api/v1/conversations/{id}/settings``: the user's own settings of a conversation.

Muting, notifications, archiving and pinning the conversation in one's list: the
conversation channel's ``update_member_settings`` (through the conversation's actor; the
user's other devices get ``member_settings_updated`` on ``user:<id>``) and the settings part
of ``get_member_state``.
"""

from __future__ import annotations

from litestar import Router, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from actors.member_settings import MemberSettings, SettingsChange
from actors.member_state import MemberStateReads
from whispr.auth import Identity
from whispr.http.context import HttpContext
from whispr.http.routes.common import CONVERSATION, READ_PROBLEMS, WRITE_PROBLEMS

__all__ = ["router"]


@get("/settings", summary="Read one's settings of a conversation", responses=READ_PROBLEMS)
async def get_settings(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
) -> MemberSettings:
    """The user's muting, notifications, archiving and pin order of the conversation."""
    reads = MemberStateReads(ctx.messaging.deps.store)
    return await reads.settings(identity.user_id, conversation_id)


@patch("/settings", summary="Change one's settings of a conversation", responses=WRITE_PROBLEMS)
async def update_settings(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[SettingsChange],
) -> MemberSettings:
    """Set the fields given (``muted_until``: a time, ``"forever"`` or null;
    ``notifications``; ``archived``; ``pin_order``), leaving the others as they are."""
    return await ctx.messaging.update_member_settings(identity.user_id, conversation_id, data)


router = Router(CONVERSATION, route_handlers=[get_settings, update_settings], tags=["settings"])
