"""``/api/v1/conversations/{id}/scheduled`` and ``/disappearing``: a member's scheduled
messages, and the conversation's disappearing setting.

Each route is the conversation channel's event (``schedule_message``, ``list_scheduled``,
``update_scheduled``, ``cancel_scheduled``, ``set_disappearing``;
``whispr/gateway/channels/scheduled.py``): the same :class:`~actors.schedules.Schedules` or
``Messaging`` call and the same rate limit. Scheduling is idempotent by the message's client
id, given as the ``Idempotency-Key`` header as for a send: a retry answers the schedule made
the first time. A member sees and changes only their own schedules; one that is being sent
can no longer change (``conflict``).
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from litestar import Router, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from actors.errors import Reason, WhisprError
from actors.model import Conversation
from actors.schedules import ScheduleChanges
from actors.scheduling import Schedule
from whispr.auth import Identity
from whispr.gateway.channels.scheduled import SetDisappearing
from whispr.http.context import HttpContext
from whispr.http.routes.common import (
    CONVERSATION,
    MESSAGE_PROBLEMS,
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    counted,
)
from whispr.http.routes.messages import IDEMPOTENCY_KEY, NewMessage, client_id_of, draft_of

__all__ = ["NewSchedule", "ScheduleList", "ScheduleUpdate", "router"]

SCHEDULE: Final = "/scheduled/{schedule_id:str}"


class NewSchedule(NewMessage, frozen=True, forbid_unknown_fields=True):
    """A message to send later: a send's body plus ``send_at`` (seconds since the epoch; a
    past time sends at once)."""

    #: Required (its absence is refused naming it, by the schedules' own check).
    send_at: float | None = None


class ScheduleUpdate(ScheduleChanges, frozen=True, forbid_unknown_fields=True):
    """Any of ``send_at``, ``kind``, ``content``, ``attachments``, ``reply_to``,
    ``metadata``, ``ttl``: each replaces the scheduled one; a field left out stays."""


class ScheduleList(msgspec.Struct, kw_only=True):
    """The member's pending schedules in the conversation, by ``send_at``."""

    scheduled: list[Schedule]


IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_KEY,
        description="The message's client id: a retry with the same key schedules nothing "
        "more, and gets the same schedule.",
    ),
]


@post(
    "/scheduled",
    summary="Schedule a message",
    status_code=HTTP_201_CREATED,
    responses=MESSAGE_PROBLEMS,
)
async def schedule_message(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[NewSchedule],
    idempotency_key: IdempotencyKey = None,
) -> Schedule:
    """Keep a message to be sent at ``send_at`` by the user, as one they may post now."""
    draft = draft_of(data, client_id_of(idempotency_key, data.client_id))
    await counted(ctx, identity, "conversation", "schedule_message")
    return await ctx.scheduling().schedule(identity.user_id, conversation_id, draft, data.send_at)


@get("/scheduled", summary="List one's scheduled messages", responses=READ_PROBLEMS)
async def list_scheduled(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
) -> ScheduleList:
    """The user's own pending schedules in the conversation, by ``send_at``."""
    found = await ctx.scheduling().pending(identity.user_id, conversation_id)
    return ScheduleList(scheduled=found)


@get(SCHEDULE, summary="Read one's scheduled message", responses=READ_PROBLEMS)
async def get_scheduled(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    schedule_id: FromPath[str],
) -> Schedule:
    """One of the user's own pending schedules (``not_found``: none of theirs by that id)."""
    for schedule in await ctx.scheduling().pending(identity.user_id, conversation_id):
        if schedule.id == schedule_id:
            return schedule
    raise WhisprError(Reason.NOT_FOUND, "no such scheduled message", field="schedule_id")


@patch(SCHEDULE, summary="Change one's scheduled message", responses=WRITE_PROBLEMS)
async def update_scheduled(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    schedule_id: FromPath[str],
    data: JSONBody[ScheduleUpdate],
) -> Schedule:
    """Change the time or the message of one's own schedule before it is sent."""
    changes = ScheduleChanges(
        **{
            name: value
            for name in ScheduleChanges.__struct_fields__
            if (value := getattr(data, name)) is not msgspec.UNSET
        }
    )
    await counted(ctx, identity, "conversation", "update_scheduled")
    return await ctx.scheduling().update(identity.user_id, conversation_id, schedule_id, changes)


@delete(
    SCHEDULE,
    summary="Cancel one's scheduled message",
    status_code=HTTP_204_NO_CONTENT,
    responses=WRITE_PROBLEMS,
)
async def cancel_scheduled(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    schedule_id: FromPath[str],
) -> None:
    """Drop one's own schedule before it is sent."""
    await counted(ctx, identity, "conversation", "cancel_scheduled")
    await ctx.scheduling().cancel(identity.user_id, conversation_id, schedule_id)


@put("/disappearing", summary="Set disappearing messages", responses=WRITE_PROBLEMS)
async def set_disappearing(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    data: JSONBody[SetDisappearing],
) -> Conversation:
    """Make the messages sent from now on disappear ``seconds`` after they are sent (1 to
    31,622,400); ``0`` or ``null`` turns it off (as the member's role allows)."""
    return await ctx.messaging.set_disappearing(identity.user_id, conversation_id, data.seconds)


router = Router(
    CONVERSATION,
    route_handlers=[
        schedule_message,
        list_scheduled,
        get_scheduled,
        update_scheduled,
        cancel_scheduled,
        set_disappearing,
    ],
    tags=["scheduled"],
)
