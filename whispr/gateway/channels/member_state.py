"""``conversation:<id>`` events of a member's own state: settings, receipts, pins, threads.

Registered on the conversation channel's event table (:func:`register`), so they are that
channel's events like any other; kept here so that the conversation module stays about
following the conversation. Each handler is one call of ``actors/`` (the settings through the
conversation's actor, the reads through :class:`~actors.member_state.MemberStateReads`), the
same calls the gRPC ``MemberState`` service makes.

- ``update_member_settings`` (:class:`~actors.member_settings.SettingsChange`):
  ``{"settings"}``; the user's other devices get ``member_settings_updated`` on ``user:<id>``.
- ``get_member_state``: ``{"receipts", "pins", "settings"}``, what the join gives with
  ``{"state": true}`` (:func:`join_state`).
- ``get_receipts``: ``{"receipts"}``; ``list_pins``: ``{"pins"}``;
  ``list_thread``: ``{"messages"}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors import rules
from actors.member_settings import SettingsChange
from actors.member_state import MemberStateReads
from whispr.gateway.channels.base import Channel, EventTable, Payload, Reply

__all__ = ["GetMemberState", "GetReceipts", "ListPins", "ListThread", "join_state", "register"]


class GetMemberState(Payload):
    """``get_member_state``: no fields."""


class GetReceipts(Payload):
    """``get_receipts``: every member's receipt, or with ``user_id`` one member's."""

    user_id: str | None = None


class ListPins(Payload):
    """``list_pins``: no fields."""


class ListThread(Payload):
    """``list_thread``: the replies to message ``seq``, the first ``limit`` after
    ``after_seq`` (pass the last reply's seq for the next page)."""

    seq: int
    after_seq: int = 0
    limit: int = 50


def _reads(channel: Channel) -> MemberStateReads:
    return MemberStateReads(channel.host.ctx.messaging.deps.store)


async def join_state(channel: Channel) -> dict[str, Any]:
    """The member's state of the channel's conversation, as the join reply's ``state``."""
    state = await _reads(channel).state(channel.host.user_id, channel.target)
    result: dict[str, Any] = msgspec.to_builtins(state)
    return result


async def update_member_settings(channel: Channel, change: SettingsChange, _event: str) -> Reply:
    host = channel.host
    settings = await host.ctx.messaging.update_member_settings(host.user_id, channel.target, change)
    return {"settings": msgspec.to_builtins(settings)}


async def get_member_state(channel: Channel, _p: GetMemberState, _event: str) -> Reply:
    return await join_state(channel)


async def get_receipts(channel: Channel, p: GetReceipts, _event: str) -> Reply:
    receipts = await _reads(channel).receipts(channel.host.user_id, channel.target, p.user_id)
    return {"receipts": msgspec.to_builtins(receipts)}


async def list_pins(channel: Channel, _p: ListPins, _event: str) -> Reply:
    pins = await _reads(channel).pins(channel.host.user_id, channel.target)
    return {"pins": msgspec.to_builtins(pins)}


async def list_thread(channel: Channel, p: ListThread, _event: str) -> Reply:
    rules.check_position(p.seq, "seq")  # refused naming the payload's field, not root_seq
    messages = await _reads(channel).thread(
        channel.host.user_id, channel.target, p.seq, after_seq=p.after_seq, limit=p.limit
    )
    return {"messages": msgspec.to_builtins(messages)}


def register(table: EventTable[Any]) -> None:
    """Add this module's events to a channel kind's table (the conversation channel's)."""
    table.on("update_member_settings", SettingsChange)(update_member_settings)
    table.on("get_member_state", GetMemberState)(get_member_state)
    table.on("get_receipts", GetReceipts)(get_receipts)
    table.on("list_pins", ListPins)(list_pins)
    table.on("list_thread", ListThread)(list_thread)
