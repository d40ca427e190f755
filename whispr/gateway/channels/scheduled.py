"""Scheduled and disappearing messages on ``conversation:<id>``: the events of
:mod:`actors.schedules` and :mod:`actors.disappearing`.

``schedule_message``, ``list_scheduled``, ``update_scheduled`` and ``cancel_scheduled`` are a
member's own schedules in the conversation; ``set_disappearing`` is the conversation's
setting. They are client events of the conversation channel, registered on its
:class:`~whispr.gateway.channels.base.EventTable` when this module is imported
(``whispr/gateway/channels/__init__.py`` does), each with its payload struct here, and call
the same functions as the gRPC ``ScheduledMessages`` service.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.model import Draft
from actors.schedules import ScheduleChanges
from actors.scheduling import Schedule
from whispr.gateway.channels.base import Payload, Reply
from whispr.gateway.channels.conversation import ConversationChannel, SendMessage

__all__ = [
    "CancelScheduled",
    "ListScheduled",
    "ScheduleMessage",
    "SetDisappearing",
    "UpdateScheduled",
    "schedule_reply",
]


class ScheduleMessage(SendMessage, frozen=True, forbid_unknown_fields=True):
    """``schedule_message``: ``send_message``'s payload plus ``send_at`` (seconds since the
    epoch; a past time sends at once); reply ``{"schedule": Schedule}``. ``client_id`` makes
    it idempotent: a retry answers the schedule made the first time."""

    #: Required (its absence is refused naming it, by the schedules' own check).
    send_at: float | None = None


class ListScheduled(Payload):
    """``list_scheduled``: no fields; reply ``{"scheduled": [Schedule]}``, the member's
    pending schedules here, by ``send_at``."""


class UpdateScheduled(ScheduleChanges, frozen=True, forbid_unknown_fields=True):
    """``update_scheduled``: ``schedule_id`` and any of ``send_at``, ``kind``, ``content``,
    ``attachments``, ``reply_to``, ``metadata``, ``ttl`` (each replaces the scheduled one);
    reply ``{"schedule": Schedule}``; ``conflict`` once it is being sent."""

    schedule_id: str


class CancelScheduled(Payload):
    """``cancel_scheduled``: ``{"schedule_id"}``; reply ``{"schedule_id"}``; ``conflict``
    once it is being sent."""

    schedule_id: str


class SetDisappearing(Payload):
    """``set_disappearing``: ``{"seconds": N}`` makes messages sent from now on disappear N
    seconds after they are sent (1 to 31,622,400); ``0`` or ``null`` turns it off. Reply
    ``{"conversation": Conversation}``."""

    seconds: int | None


def schedule_reply(schedule: Schedule) -> dict[str, Any]:
    """A schedule as replies show it."""
    return msgspec.to_builtins(schedule)  # type: ignore[no-any-return]


def _draft(p: ScheduleMessage) -> Draft:
    """The payload's message alone (the stored draft), without ``send_at``."""
    return Draft(**{name: getattr(p, name) for name in Draft.__struct_fields__})


_events = ConversationChannel.table


@_events.on("schedule_message", ScheduleMessage)
async def schedule_message(channel: ConversationChannel, p: ScheduleMessage, _event: str) -> Reply:
    host = channel.host
    schedule = await host.ctx.scheduling().schedule(
        host.user_id, channel.target, _draft(p), p.send_at
    )
    return {"schedule": schedule_reply(schedule)}


@_events.on("list_scheduled", ListScheduled)
async def list_scheduled(channel: ConversationChannel, _p: ListScheduled, _event: str) -> Reply:
    host = channel.host
    found = await host.ctx.scheduling().pending(host.user_id, channel.target)
    return {"scheduled": [schedule_reply(s) for s in found]}


@_events.on("update_scheduled", UpdateScheduled)
async def update_scheduled(channel: ConversationChannel, p: UpdateScheduled, _event: str) -> Reply:
    host = channel.host
    changes = ScheduleChanges(
        **{
            name: value
            for name in ScheduleChanges.__struct_fields__
            if (value := getattr(p, name)) is not msgspec.UNSET
        }
    )
    schedule = await host.ctx.scheduling().update(
        host.user_id, channel.target, p.schedule_id, changes
    )
    return {"schedule": schedule_reply(schedule)}


@_events.on("cancel_scheduled", CancelScheduled)
async def cancel_scheduled(channel: ConversationChannel, p: CancelScheduled, _event: str) -> Reply:
    host = channel.host
    await host.ctx.scheduling().cancel(host.user_id, channel.target, p.schedule_id)
    return {"schedule_id": p.schedule_id}


@_events.on("set_disappearing", SetDisappearing)
async def set_disappearing(channel: ConversationChannel, p: SetDisappearing, _event: str) -> Reply:
    host = channel.host
    conversation = await host.ctx.messaging.set_disappearing(
        host.user_id, channel.target, p.seconds
    )
    return {"conversation": msgspec.to_builtins(conversation)}
