"""The ``whispr.schedules.v1.ScheduledMessages`` servicer: scheduled and disappearing messages.

Each RPC mirrors one event of ``conversation:<id>`` (whispr/gateway/channels/scheduled.py)
and calls the same :class:`~actors.schedules.Schedules` or
:class:`~actors.messaging.Messaging` function, so the rules, the permission table and the
errors are the WebSocket path's. Authentication, refusals, the audit log and metrics are the
messaging service's, through the same decorator (:func:`whispr.grpc.service.rpc`). A schedule
is always a user's (``user_id``), never the calling service's.
"""

from __future__ import annotations

import msgspec

from actors import rules
from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.model import Attachment, Draft
from actors.schedules import ScheduleChanges, Schedules
from actors.scheduling import Schedule
from whispr.audit import AuditLog
from whispr.grpc.auth import CallerAuth
from whispr.grpc.convert import conversation_to_pb, struct_from_dict, struct_to_dict
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2
from whispr.grpc.gen.whispr.schedules.v1 import schedules_pb2 as pb
from whispr.grpc.gen.whispr.schedules.v1 import schedules_pb2_grpc as pb_grpc
from whispr.grpc.service import RpcMetrics, ServedOverMessaging, required, rpc

__all__ = ["ScheduledMessagesServicer", "schedule_to_pb"]


def schedule_to_pb(schedule: Schedule) -> pb.Schedule:
    draft = schedule.draft
    return pb.Schedule(
        id=schedule.id,
        conversation_id=schedule.conversation_id,
        sender_id=schedule.sender_id,
        draft=pb.ScheduledDraft(
            client_id=draft.client_id,
            kind=draft.kind,
            content=draft.content,
            attachments=[
                messaging_pb2.Attachment(id=a.id, mime_type=a.mime_type, size=a.size, name=a.name)
                for a in draft.attachments
            ],
            reply_to=draft.reply_to or 0,
            metadata=struct_from_dict(draft.metadata),
            ttl=draft.ttl or 0,
        ),
        send_at=schedule.send_at,
        created_at=schedule.created_at,
    )


def _draft(draft: pb.ScheduledDraft) -> Draft:
    kind = draft.kind or "text"
    if kind not in ("text", "media"):
        raise WhisprError(Reason.INVALID, "kind must be text or media", field="kind")
    rules.check_position(draft.reply_to, "reply_to")
    if draft.ttl < 0:
        raise WhisprError(Reason.INVALID, "ttl must not be negative", field="ttl")
    return Draft(
        client_id=required(draft.client_id, "client_id"),
        kind=kind,  # type: ignore[arg-type]
        content=draft.content,
        attachments=tuple(
            Attachment(id=a.id, mime_type=a.mime_type, size=a.size, name=a.name)
            for a in draft.attachments
        ),
        reply_to=draft.reply_to or None,
        metadata=struct_to_dict(draft.metadata),
        ttl=draft.ttl or None,
    )


class ScheduledMessagesServicer(ServedOverMessaging, pb_grpc.ScheduledMessagesServicer):
    """Scheduled messages over one node's :class:`Schedules` (None: not served here)."""

    def __init__(
        self,
        messaging: Messaging,
        schedules: Schedules | None,
        auth: CallerAuth,
        metrics: RpcMetrics,
        *,
        audit: AuditLog,
    ) -> None:
        super().__init__(messaging, auth, metrics, audit=audit)
        self.schedules = schedules

    def _schedules(self) -> Schedules:
        if self.schedules is None:
            raise WhisprError(Reason.UNAVAILABLE, "scheduled messages are not served here")
        return self.schedules

    @rpc("ScheduledMessages.ScheduleMessage")
    async def ScheduleMessage(
        self, _caller: str, request: pb.ScheduleMessageRequest
    ) -> pb.ScheduleResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        rules.check_user_ids([user_id], "user_id")
        if not request.HasField("draft"):
            raise WhisprError(Reason.INVALID, "draft is required", field="draft")
        schedule = await self._schedules().schedule(
            user_id, conversation_id, _draft(request.draft), request.send_at
        )
        return pb.ScheduleResponse(schedule=schedule_to_pb(schedule))

    @rpc("ScheduledMessages.ListScheduled")
    async def ListScheduled(
        self, _caller: str, request: pb.ListScheduledRequest
    ) -> pb.ListScheduledResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        rules.check_user_ids([user_id], "user_id")
        found = await self._schedules().pending(user_id, conversation_id)
        return pb.ListScheduledResponse(scheduled=[schedule_to_pb(s) for s in found])

    @rpc("ScheduledMessages.UpdateScheduled")
    async def UpdateScheduled(
        self, _caller: str, request: pb.UpdateScheduledRequest
    ) -> pb.ScheduleResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        rules.check_user_ids([user_id], "user_id")
        changes = ScheduleChanges(
            send_at=request.send_at if request.HasField("send_at") else msgspec.UNSET,
            content=request.content if request.HasField("content") else msgspec.UNSET,
        )
        schedule = await self._schedules().update(
            user_id, conversation_id, required(request.schedule_id, "schedule_id"), changes
        )
        return pb.ScheduleResponse(schedule=schedule_to_pb(schedule))

    @rpc("ScheduledMessages.CancelScheduled")
    async def CancelScheduled(
        self, _caller: str, request: pb.CancelScheduledRequest
    ) -> pb.CancelScheduledResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        rules.check_user_ids([user_id], "user_id")
        await self._schedules().cancel(
            user_id, conversation_id, required(request.schedule_id, "schedule_id")
        )
        return pb.CancelScheduledResponse()

    @rpc("ScheduledMessages.SetDisappearing")
    async def SetDisappearing(
        self, _caller: str, request: pb.SetDisappearingRequest
    ) -> pb.SetDisappearingResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        rules.check_user_ids([user_id], "user_id")
        conversation = await self.messaging.set_disappearing(
            user_id, conversation_id, request.seconds
        )
        return pb.SetDisappearingResponse(conversation=conversation_to_pb(conversation))
