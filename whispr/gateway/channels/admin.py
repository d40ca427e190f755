"""Group administration on ``conversation:<id>``: the events of :mod:`actors.admin`.

``add_members``, ``remove_member``, ``leave``, ``set_role``, ``update_conversation``,
``transfer_ownership`` and ``list_members`` are client events of the conversation channel,
registered on its :class:`~whispr.gateway.channels.base.EventTable` when this module is
imported (``whispr/gateway/channels/__init__.py`` does), each with its payload struct here.
Each calls ``Messaging``, which runs the operation on the conversation's actor: the same
function and permission table as the gRPC ``ConversationAdmin`` service.

A member who leaves (or removes themselves) gets the reply to that push first, then
``phx_close``: the ``member_removed`` event about them is still broadcast to this channel
when it arrives, but the channel is ended only once the reply is on its way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from actors.admin import ConversationChanges
from actors.rules import MAX_PAGE
from whispr.gateway.channels.base import Payload, Reply
from whispr.gateway.channels.conversation import ConversationChannel

__all__ = [
    "AddMembers",
    "Leave",
    "ListMembers",
    "RemoveMember",
    "SetRole",
    "TransferOwnership",
    "UpdateConversation",
]


class AddMembers(Payload):
    """``add_members``: ``{"user_ids": [...]}``; reply ``{"members": [Member]}`` (those added,
    not those already in)."""

    user_ids: tuple[str, ...]


class RemoveMember(Payload):
    """``remove_member``: ``{"user_id"}``; reply ``{"user_id"}``."""

    user_id: str


class Leave(Payload):
    """``leave``: no fields; reply ``{}``, then the channel closes (``phx_close``)."""


class SetRole(Payload):
    """``set_role``: ``{"user_id", "role": "admin" | "member" | "owner"}``; reply
    ``{"member": Member}`` (``owner`` transfers the ownership)."""

    user_id: str
    role: str


class UpdateConversation(ConversationChanges, frozen=True, forbid_unknown_fields=True):
    """``update_conversation``: any of ``title``, ``avatar``, ``description`` (``null``
    clears) and ``settings`` (``who_can_post``, ``who_can_add``); reply
    ``{"conversation": Conversation}``."""


class TransferOwnership(Payload):
    """``transfer_ownership``: ``{"user_id"}``; reply ``{"members": [Member]}`` (the new owner,
    then the former one, now an admin)."""

    user_id: str


class ListMembers(Payload):
    """``list_members``: ``{"after": cursor, "limit": 200}``; reply ``{"members": [Member],
    "next": cursor | null}``, oldest member first."""

    after: str | None = None
    limit: int = MAX_PAGE


_events = ConversationChannel.table


@_events.on("add_members", AddMembers)
async def add_members(channel: ConversationChannel, p: AddMembers, _event: str) -> Reply:
    host = channel.host
    added = await host.ctx.messaging.add_members(host.user_id, channel.target, list(p.user_ids))
    return {"members": msgspec.to_builtins(added)}


@_events.on("remove_member", RemoveMember)
async def remove_member(channel: ConversationChannel, p: RemoveMember, _event: str) -> Reply:
    host = channel.host
    if p.user_id == host.user_id:
        await _leave(channel)
    else:
        await host.ctx.messaging.remove_member(host.user_id, channel.target, p.user_id)
    return {"user_id": p.user_id}


@_events.on("leave", Leave)
async def leave(channel: ConversationChannel, _p: Leave, _event: str) -> Reply:
    await _leave(channel)
    return {}


async def _leave(channel: ConversationChannel) -> None:
    """Leave; the channel ends after the reply (see the module's docstring)."""
    host = channel.host
    channel.removal_pending = True
    try:
        await host.ctx.messaging.leave(host.user_id, channel.target)
    finally:
        channel.removal_pending = False
    # The connection sends the reply as soon as this push's handler returns: the close, on
    # the loop's next turn, follows it.
    asyncio.get_running_loop().call_soon(channel.close_for_good)


@_events.on("set_role", SetRole)
async def set_role(channel: ConversationChannel, p: SetRole, _event: str) -> Reply:
    host = channel.host
    member = await host.ctx.messaging.set_role(host.user_id, channel.target, p.user_id, p.role)
    return {"member": msgspec.to_builtins(member)}


@_events.on("update_conversation", UpdateConversation)
async def update_conversation(
    channel: ConversationChannel, p: UpdateConversation, _event: str
) -> Reply:
    host = channel.host
    updated = await host.ctx.messaging.update_conversation(host.user_id, channel.target, p)
    return {"conversation": msgspec.to_builtins(updated)}


@_events.on("transfer_ownership", TransferOwnership)
async def transfer_ownership(
    channel: ConversationChannel, p: TransferOwnership, _event: str
) -> Reply:
    host = channel.host
    heir, former = await host.ctx.messaging.transfer_ownership(
        host.user_id, channel.target, p.user_id
    )
    changed: list[Any] = [heir] if former is None else [heir, former]
    return {"members": msgspec.to_builtins(changed)}


@_events.on("list_members", ListMembers)
async def list_members(channel: ConversationChannel, p: ListMembers, _event: str) -> Reply:
    host = channel.host
    page = await host.ctx.messaging.list_members(
        host.user_id, channel.target, after=p.after, limit=p.limit
    )
    return msgspec.to_builtins(page)  # type: ignore[no-any-return]
