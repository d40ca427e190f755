"""``whispr.admin.v1.ConversationAdmin`` over a real gRPC channel, on both stores.

The same operations as the WebSocket path (tests/gateway/test_admin.py), through the same
actor functions: an acting user's rights apply, the calling service itself needs none, and a
refusal names the missing right in ``whispr-right``.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.gateway.conftest import unique
from tests.grpc.conftest import GrpcNode
from whispr.grpc.gen.whispr.admin.v1 import admin_pb2 as pb
from whispr.grpc.gen.whispr.admin.v1 import admin_pb2_grpc as pb_grpc
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as mpb


async def _refused(call: Any) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    trailing = error.trailing_metadata() or ()
    return error.code(), {key: str(value) for key, value in trailing}


async def test_every_administration_call(grpc_node: GrpcNode, stub: Any) -> None:
    auth = grpc_node.auth()
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    created = await stub.CreateConversation(
        mpb.CreateConversationRequest(
            kind=mpb.CONVERSATION_KIND_GROUP, creator_id=ada, title="g", member_ids=[bob]
        ),
        metadata=auth,
    )
    cid = created.conversation.id
    async with grpc_node.channel() as channel:
        admin = pb_grpc.ConversationAdminStub(channel)
        added = await admin.AddMembers(
            pb.AddMembersRequest(conversation_id=cid, user_ids=[cy, bob], acting_user_id=ada),
            metadata=auth,
        )
        assert [(m.user_id, m.role) for m in added.added] == [(cy, "member")]

        # A plain member lacks set_role: PERMISSION_DENIED, reason and right in the metadata.
        code, trailing = await _refused(
            admin.SetRole(
                pb.SetRoleRequest(
                    conversation_id=cid, user_id=cy, role="admin", acting_user_id=bob
                ),
                metadata=auth,
            )
        )
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert (trailing["whispr-reason"], trailing["whispr-right"]) == ("forbidden", "set_role")

        role = await admin.SetRole(
            pb.SetRoleRequest(conversation_id=cid, user_id=bob, role="admin", acting_user_id=ada),
            metadata=auth,
        )
        assert (role.member.user_id, role.member.role) == (bob, "admin")

        updated = await admin.UpdateConversation(
            pb.UpdateConversationRequest(
                conversation_id=cid,
                title="renamed",
                description="about",
                settings={"who_can_post": "admins"},
                acting_user_id=bob,
            ),
            metadata=auth,
        )
        assert (updated.conversation.title, updated.description) == ("renamed", "about")
        assert dict(updated.conversation.settings) == {"who_can_post": "admins"}
        # The calling service itself needs no role; clear empties a field.
        cleared = await admin.UpdateConversation(
            pb.UpdateConversationRequest(conversation_id=cid, clear=["description"]),
            metadata=auth,
        )
        assert cleared.description == ""
        code, trailing = await _refused(
            admin.UpdateConversation(
                pb.UpdateConversationRequest(conversation_id=cid, settings={"who_can_post": "x"}),
                metadata=auth,
            )
        )
        assert (code, trailing["whispr-field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "settings")

        seen: list[tuple[str, str]] = []
        after = ""
        while True:
            page = await admin.ListMembers(
                pb.ListMembersRequest(conversation_id=cid, after=after, limit=2, acting_user_id=cy),
                metadata=auth,
            )
            seen += [(m.user_id, m.role) for m in page.members]
            if not page.next:
                break
            after = page.next
        assert sorted(seen) == sorted([(ada, "owner"), (bob, "admin"), (cy, "member")])

        moved = await admin.TransferOwnership(
            pb.TransferOwnershipRequest(conversation_id=cid, user_id=bob, acting_user_id=ada),
            metadata=auth,
        )
        assert [(m.user_id, m.role) for m in moved.members] == [(bob, "owner"), (ada, "admin")]

        removed = await admin.RemoveMember(
            pb.RemoveMemberRequest(conversation_id=cid, user_id=cy, acting_user_id=ada),
            metadata=auth,
        )
        assert removed.removed
        again = await admin.RemoveMember(
            pb.RemoveMemberRequest(conversation_id=cid, user_id=cy, acting_user_id=ada),
            metadata=auth,
        )
        assert not again.removed
        await admin.Leave(pb.LeaveRequest(conversation_id=cid, user_id=ada), metadata=auth)
        page = await admin.ListMembers(pb.ListMembersRequest(conversation_id=cid), metadata=auth)
        assert [(m.user_id, m.role) for m in page.members] == [(bob, "owner")]

    history = await stub.ListMessages(
        mpb.ListMessagesRequest(conversation_id=cid, after_seq=0), metadata=auth
    )
    events = [dict(m.metadata)["event"] for m in history.messages]
    assert events == [
        "member_added",
        "role_changed",
        "conversation_updated",
        "conversation_updated",
        "ownership_transferred",
        "member_removed",
        "member_left",
    ]


async def test_a_direct_conversation_refuses_even_a_service(grpc_node: GrpcNode, stub: Any) -> None:
    auth = grpc_node.auth()
    created = await stub.CreateConversation(
        mpb.CreateConversationRequest(
            kind=mpb.CONVERSATION_KIND_DIRECT, creator_id=unique("ada"), member_ids=[unique("b")]
        ),
        metadata=auth,
    )
    async with grpc_node.channel() as channel:
        admin = pb_grpc.ConversationAdminStub(channel)
        code, trailing = await _refused(
            admin.UpdateConversation(
                pb.UpdateConversationRequest(conversation_id=created.conversation.id, title="x"),
                metadata=auth,
            )
        )
    assert (code, trailing["whispr-reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "forbidden")
