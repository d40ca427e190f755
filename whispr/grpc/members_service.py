"""The ``whispr.members.v1.MemberState`` servicer: a member's own state, for sibling services.

The calls mirror the ``conversation:<id>`` events of ``whispr/gateway/channels/member_state.py``
and call the same functions of ``actors/`` (settings through the conversation's actor, reads
through :class:`~actors.member_state.MemberStateReads`). Authentication, status codes, audit
records and metrics are the messaging API's, through the same :func:`~whispr.grpc.service.rpc`.

Protobuf has no "unset" for scalars, so a settings change says what it changes with
``oneof`` and ``optional`` fields, and a "forever" mute travels as ``muted_forever``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from actors import rules
from actors.errors import Reason, WhisprError
from actors.member_settings import MemberSettings, SettingsChange
from actors.member_state import MemberStateReads, Receipt
from whispr.grpc.convert import message_to_pb
from whispr.grpc.gen.whispr.members.v1 import members_pb2 as pb
from whispr.grpc.gen.whispr.members.v1 import members_pb2_grpc as pb_grpc
from whispr.grpc.service import ServedOverMessaging, required, rpc

__all__ = ["MEMBER_STATE_SERVICE", "MemberStateServicer"]

MEMBER_STATE_SERVICE: Final = pb.DESCRIPTOR.services_by_name["MemberState"].full_name

_NOTIFICATIONS: Final[dict[str, Any]] = {
    "all": pb.NOTIFICATIONS_ALL,
    "mentions": pb.NOTIFICATIONS_MENTIONS,
    "none": pb.NOTIFICATIONS_NONE,
}
_NOTIFICATION_NAMES: Final = {value: name for name, value in _NOTIFICATIONS.items()}


class MemberStateServicer(ServedOverMessaging, pb_grpc.MemberStateServicer):
    """The member-state API over one node's :class:`Messaging`."""

    @property
    def reads(self) -> MemberStateReads:
        return MemberStateReads(self.messaging.deps.store)

    @rpc("UpdateMemberSettings")
    async def UpdateMemberSettings(
        self, caller: str, request: pb.UpdateMemberSettingsRequest
    ) -> pb.MemberSettings:
        conversation_id, user_id = _member(request)
        settings = await self.messaging.update_member_settings(
            user_id, conversation_id, _change(request)
        )
        return _settings_to_pb(settings)

    @rpc("GetMemberState")
    async def GetMemberState(
        self, caller: str, request: pb.GetMemberStateRequest
    ) -> pb.GetMemberStateResponse:
        conversation_id, user_id = _member(request)
        state = await self.reads.state(user_id, conversation_id)
        return pb.GetMemberStateResponse(
            receipts=[_receipt_to_pb(r) for r in state.receipts],
            pins=[message_to_pb(m) for m in state.pins],
            settings=_settings_to_pb(state.settings),
        )

    @rpc("GetReceipts")
    async def GetReceipts(
        self, caller: str, request: pb.GetReceiptsRequest
    ) -> pb.GetReceiptsResponse:
        conversation_id, user_id = _member(request)
        receipts = await self.reads.receipts(user_id, conversation_id, request.of_user_id or None)
        return pb.GetReceiptsResponse(receipts=[_receipt_to_pb(r) for r in receipts])

    @rpc("ListPins")
    async def ListPins(self, caller: str, request: pb.ListPinsRequest) -> pb.ListPinsResponse:
        conversation_id, user_id = _member(request)
        pins = await self.reads.pins(user_id, conversation_id)
        return pb.ListPinsResponse(pins=[message_to_pb(m) for m in pins])

    @rpc("ListThread")
    async def ListThread(self, caller: str, request: pb.ListThreadRequest) -> pb.ListThreadResponse:
        conversation_id, user_id = _member(request)
        if not 0 <= request.limit <= rules.MAX_PAGE:
            raise WhisprError(
                Reason.INVALID, f"limit must be 1 to {rules.MAX_PAGE} (0: 50)", field="limit"
            )
        messages = await self.reads.thread(
            user_id,
            conversation_id,
            request.seq,
            after_seq=request.after_seq,
            limit=request.limit or 50,
        )
        return pb.ListThreadResponse(messages=[message_to_pb(m) for m in messages])

    @rpc("GetUnreadState")
    async def GetUnreadState(
        self, caller: str, request: pb.GetUnreadStateRequest
    ) -> pb.GetUnreadStateResponse:
        user_id = required(request.user_id, "user_id")
        state = await self.reads.unread(user_id)
        return pb.GetUnreadStateResponse(unread=state.unread, mentions=state.mentions)


def _member(request: Any) -> tuple[str, str]:
    """``(conversation_id, user_id)`` of a request about one member of one conversation."""
    return (
        required(request.conversation_id, "conversation_id"),
        required(request.user_id, "user_id"),
    )


def _change(request: pb.UpdateMemberSettingsRequest) -> SettingsChange:
    """The request's change as the WebSocket payload would give it."""
    fields: dict[str, Any] = {}
    mute = request.WhichOneof("mute")
    if mute == "muted_until":
        fields["muted_until"] = request.muted_until
    elif mute == "muted_forever" and request.muted_forever:
        fields["muted_until"] = "forever"
    elif mute == "unmute" and request.unmute:
        fields["muted_until"] = None
    if request.notifications:
        name = _NOTIFICATION_NAMES.get(request.notifications)
        if name is None:
            raise WhisprError(Reason.INVALID, "unknown notifications", field="notifications")
        fields["notifications"] = name
    if request.HasField("archived"):
        fields["archived"] = request.archived
    pin = request.WhichOneof("pin")
    if pin == "pin_order":
        fields["pin_order"] = request.pin_order
    elif pin == "unpin" and request.unpin:
        fields["pin_order"] = None
    return msgspec.convert(fields, SettingsChange)


def _settings_to_pb(settings: MemberSettings) -> pb.MemberSettings:
    forever = settings.muted_until == "forever"
    muted_until = settings.muted_until if isinstance(settings.muted_until, float) else 0.0
    return pb.MemberSettings(
        conversation_id=settings.conversation_id,
        user_id=settings.user_id,
        muted_until=muted_until,
        muted_forever=forever,
        notifications=_NOTIFICATIONS[settings.notifications],
        archived=settings.archived,
        pinned=settings.pin_order is not None,
        pin_order=settings.pin_order or 0,
    )


def _receipt_to_pb(receipt: Receipt) -> pb.Receipt:
    return pb.Receipt(
        user_id=receipt.user_id,
        read_seq=receipt.read_seq,
        has_delivered=receipt.delivered_seq is not None,
        delivered_seq=receipt.delivered_seq or 0,
    )
