"""The ``whispr.admin.v1.ConversationAdmin`` servicer: group administration for sibling services.

Each RPC mirrors one event of ``conversation:<id>`` (whispr/gateway/channels/admin.py) and
calls the same :class:`~actors.messaging.Messaging` function, so the conversation actor, the
permission table and the errors are the WebSocket path's. Authentication, refusals, the audit
log and metrics are the messaging service's, through the same decorator
(:func:`whispr.grpc.service.rpc`).

Without ``acting_user_id`` the calling service acts as itself (``service:<name>``) and needs
no role, as in ``MessagingService.AddMembers``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.admin import ConversationChanges
from actors.errors import Reason, WhisprError
from actors.rules import MAX_PAGE
from whispr.grpc.convert import conversation_to_pb, member_to_pb
from whispr.grpc.gen.whispr.admin.v1 import admin_pb2 as pb
from whispr.grpc.gen.whispr.admin.v1 import admin_pb2_grpc as pb_grpc
from whispr.grpc.service import (
    ServedOverMessaging,
    acting_party,
    add_members,
    remove_member,
    required,
    rpc,
)

__all__ = ["ConversationAdminServicer"]

_CLEARABLE = ("title", "avatar", "description")


class ConversationAdminServicer(ServedOverMessaging, pb_grpc.ConversationAdminServicer):
    """Group administration over one node's :class:`Messaging`."""

    @rpc("ConversationAdmin.AddMembers")
    async def AddMembers(self, caller: str, request: pb.AddMembersRequest) -> pb.AddMembersResponse:
        added = await add_members(
            self.messaging,
            caller,
            request.conversation_id,
            request.user_ids,
            request.acting_user_id,
        )
        return pb.AddMembersResponse(added=[member_to_pb(m) for m in added])

    @rpc("ConversationAdmin.RemoveMember")
    async def RemoveMember(
        self, caller: str, request: pb.RemoveMemberRequest
    ) -> pb.RemoveMemberResponse:
        removed = await remove_member(
            self.messaging, caller, request.conversation_id, request.user_id, request.acting_user_id
        )
        return pb.RemoveMemberResponse(removed=removed)

    @rpc("ConversationAdmin.Leave")
    async def Leave(self, caller: str, request: pb.LeaveRequest) -> pb.LeaveResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        await self.messaging.leave(required(request.user_id, "user_id"), conversation_id)
        return pb.LeaveResponse()

    @rpc("ConversationAdmin.SetRole")
    async def SetRole(self, caller: str, request: pb.SetRoleRequest) -> pb.SetRoleResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        acting, trusted = acting_party(caller, request.acting_user_id)
        member = await self.messaging.set_role(
            acting, conversation_id, user_id, required(request.role, "role"), trusted=trusted
        )
        return pb.SetRoleResponse(member=member_to_pb(member))

    @rpc("ConversationAdmin.UpdateConversation")
    async def UpdateConversation(
        self, caller: str, request: pb.UpdateConversationRequest
    ) -> pb.UpdateConversationResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        changes: dict[str, Any] = {
            name: getattr(request, name) for name in _CLEARABLE if request.HasField(name)
        }
        for name in request.clear:
            if name not in _CLEARABLE:
                raise WhisprError(Reason.INVALID, f"clear takes {list(_CLEARABLE)}", field="clear")
            if name in changes:
                raise WhisprError(Reason.INVALID, f"{name} is both set and cleared", field=name)
            changes[name] = None
        if request.settings:
            changes["settings"] = dict(request.settings)
        acting, trusted = acting_party(caller, request.acting_user_id)
        updated = await self.messaging.update_conversation(
            acting,
            conversation_id,
            msgspec.convert(changes, ConversationChanges),
            trusted=trusted,
        )
        return pb.UpdateConversationResponse(
            conversation=conversation_to_pb(updated), description=updated.description or ""
        )

    @rpc("ConversationAdmin.TransferOwnership")
    async def TransferOwnership(
        self, caller: str, request: pb.TransferOwnershipRequest
    ) -> pb.TransferOwnershipResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        user_id = required(request.user_id, "user_id")
        acting, trusted = acting_party(caller, request.acting_user_id)
        heir, former = await self.messaging.transfer_ownership(
            acting, conversation_id, user_id, trusted=trusted
        )
        changed = [heir] if former is None else [heir, former]
        return pb.TransferOwnershipResponse(members=[member_to_pb(m) for m in changed])

    @rpc("ConversationAdmin.ListMembers")
    async def ListMembers(
        self, caller: str, request: pb.ListMembersRequest
    ) -> pb.ListMembersResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        acting, trusted = acting_party(caller, request.acting_user_id)
        page = await self.messaging.list_members(
            acting,
            conversation_id,
            after=request.after or None,
            limit=request.limit or MAX_PAGE,
            trusted=trusted,
        )
        return pb.ListMembersResponse(
            members=[member_to_pb(m) for m in page.members], next=page.next or ""
        )
