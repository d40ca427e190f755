"""``/api/v1/conversations/{id}/members``: a conversation's members and their management.

Each route is the conversation channel's event of the same name (``list_members``,
``add_members``, ``remove_member`` or ``leave``, ``set_role``, ``transfer_ownership``):
the same ``Messaging`` call, run on the conversation's actor with the one permission table
(``actors/permissions.py``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from actors.admin import MembersPage
from actors.model import Member
from actors.rules import MAX_PAGE
from whispr.auth import Identity
from whispr.http.context import HttpContext
from whispr.http.routes.common import CONVERSATION, READ_PROBLEMS, WRITE_PROBLEMS

__all__ = ["AddMembers", "MemberList", "NewOwner", "RoleChange", "router"]


class AddMembers(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The users to add to a group."""

    user_ids: tuple[str, ...]


class RoleChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A member's new role (``owner`` transfers the ownership to them)."""

    role: str


class NewOwner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The member to make the group's owner."""

    user_id: str


class MemberList(msgspec.Struct, kw_only=True):
    """Members as a change left them: those added, or the new owner then the former one."""

    members: list[Member]


@get("/members", summary="List a conversation's members", responses=READ_PROBLEMS)
async def list_members(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    limit: Annotated[
        int, QueryParameter(description="At most this many (capped at 200).")
    ] = MAX_PAGE,
    cursor: Annotated[str | None, QueryParameter(description="The previous page's `next`.")] = None,
) -> MembersPage:
    """A page of members with their roles, oldest member first."""
    return await ctx.messaging.list_members(
        identity.user_id, conversation_id, after=cursor, limit=limit
    )


@post("/members", summary="Add members", status_code=HTTP_201_CREATED, responses=WRITE_PROBLEMS)
async def add_members(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[AddMembers],
) -> MemberList:
    """Add users to a group; the answer lists those added (not those already in)."""
    added = await ctx.messaging.add_members(identity.user_id, conversation_id, list(data.user_ids))
    return MemberList(members=added)


@delete(
    "/members/{user_id:str}",
    summary="Remove a member, or leave",
    status_code=HTTP_204_NO_CONTENT,
    responses=WRITE_PROBLEMS,
)
async def remove_member(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    user_id: FromPath[str],
) -> None:
    """Remove a member (as the role allows); one's own id leaves (an owner's leaving hands
    the ownership over)."""
    if user_id == identity.user_id:
        await ctx.messaging.leave(identity.user_id, conversation_id)
    else:
        await ctx.messaging.remove_member(identity.user_id, conversation_id, user_id)


@patch("/members/{user_id:str}", summary="Change a member's role", responses=WRITE_PROBLEMS)
async def set_role(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    user_id: FromPath[str],
    data: JSONBody[RoleChange],
) -> Member:
    """Give a member the role ``admin``, ``member`` or ``owner``."""
    return await ctx.messaging.set_role(identity.user_id, conversation_id, user_id, data.role)


@put("/owner", summary="Transfer the ownership", responses=WRITE_PROBLEMS)
async def transfer_ownership(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[NewOwner],
) -> MemberList:
    """Make another member the owner; the former owner stays as an admin. The answer lists
    the new owner, then the former one."""
    heir, former = await ctx.messaging.transfer_ownership(
        identity.user_id, conversation_id, data.user_id
    )
    return MemberList(members=[heir] if former is None else [heir, former])


router = Router(
    CONVERSATION,
    route_handlers=[list_members, add_members, remove_member, set_role, transfer_ownership],
    tags=["members"],
)
