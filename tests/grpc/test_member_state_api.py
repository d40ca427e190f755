"""Every RPC of ``whispr.members.v1.MemberState`` over a real socket, on the embedded node and
on PostgreSQL and Redis: the same answers as the WebSocket events, refusals as status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from actors.conversation import Draft
from tests.gateway.conftest import unique
from tests.grpc.conftest import GrpcNode
from tests.grpc.test_messaging_api import _refused
from whispr.grpc.gen.whispr.members.v1 import members_pb2 as pb
from whispr.grpc.gen.whispr.members.v1 import members_pb2_grpc as pb_grpc

AUTH = GrpcNode.auth()


@pytest.fixture
async def members(grpc_node: GrpcNode) -> AsyncIterator[Any]:
    async with grpc_node.channel() as channel:
        yield pb_grpc.MemberStateStub(channel)


async def test_settings_state_receipts_pins_threads_and_mentions(
    grpc_node: GrpcNode, members: Any
) -> None:
    messaging = grpc_node.running.node.messaging.get()
    ada, bob, zed = unique("ada"), unique("bob"), unique("zed")
    cid = (await messaging.create_group(ada, "t", [bob])).id
    root = await messaging.send(ada, cid, Draft(client_id="m1", content=f"hey @{bob}"))
    reply = await messaging.send(bob, cid, Draft(client_id="m2", content="yes", reply_to=root.seq))
    await messaging.pin(ada, cid, root.seq)
    await messaging.mark_delivered(bob, "phone", cid, reply.seq)

    settings = await members.UpdateMemberSettings(
        pb.UpdateMemberSettingsRequest(
            conversation_id=cid,
            user_id=bob,
            muted_forever=True,
            notifications=pb.NOTIFICATIONS_MENTIONS,
            archived=True,
            pin_order=3,
        ),
        metadata=AUTH,
    )
    assert (settings.muted_forever, settings.muted_until) == (True, 0.0)
    assert settings.notifications == pb.NOTIFICATIONS_MENTIONS
    assert (settings.archived, settings.pinned, settings.pin_order) == (True, True, 3)
    # Only what is set changes: unmute and unpin, the rest stays.
    settings = await members.UpdateMemberSettings(
        pb.UpdateMemberSettingsRequest(conversation_id=cid, user_id=bob, unmute=True, unpin=True),
        metadata=AUTH,
    )
    assert (settings.muted_forever, settings.pinned, settings.archived) == (False, False, True)
    assert settings.notifications == pb.NOTIFICATIONS_MENTIONS

    state = await members.GetMemberState(
        pb.GetMemberStateRequest(conversation_id=cid, user_id=bob), metadata=AUTH
    )
    receipts = {r.user_id: r for r in state.receipts}
    assert (receipts[bob].read_seq, receipts[bob].delivered_seq) == (0, reply.seq)
    assert receipts[bob].has_delivered
    assert [p.seq for p in state.pins] == [root.seq]
    assert state.settings == settings

    got = await members.GetReceipts(
        pb.GetReceiptsRequest(conversation_id=cid, user_id=ada, of_user_id=bob), metadata=AUTH
    )
    assert list(got.receipts) == [receipts[bob]]
    pins = await members.ListPins(
        pb.ListPinsRequest(conversation_id=cid, user_id=ada), metadata=AUTH
    )
    assert [p.seq for p in pins.pins] == [root.seq]
    thread = await members.ListThread(
        pb.ListThreadRequest(conversation_id=cid, user_id=ada, seq=root.seq), metadata=AUTH
    )
    assert [m.seq for m in thread.messages] == [reply.seq]

    unread = await members.GetUnreadState(pb.GetUnreadStateRequest(user_id=bob), metadata=AUTH)
    assert (dict(unread.unread), dict(unread.mentions)) == ({cid: 1}, {cid: 1})
    await messaging.mark_read(bob, cid, root.seq)
    unread = await members.GetUnreadState(pb.GetUnreadStateRequest(user_id=bob), metadata=AUTH)
    assert (dict(unread.unread), dict(unread.mentions)) == ({cid: 0}, {})

    # Refusals: a non-member, an unknown conversation or message, bad values, no token.
    await _refused(
        members.ListPins(pb.ListPinsRequest(conversation_id=cid, user_id=zed), metadata=AUTH),
        grpc.StatusCode.PERMISSION_DENIED,
        "not_member",
    )
    await _refused(
        members.ListPins(pb.ListPinsRequest(conversation_id="nope", user_id=ada), metadata=AUTH),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    await _refused(
        members.ListThread(
            pb.ListThreadRequest(conversation_id=cid, user_id=ada, seq=999), metadata=AUTH
        ),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    for bad in (
        pb.UpdateMemberSettingsRequest(conversation_id=cid, user_id=bob),
        pb.UpdateMemberSettingsRequest(conversation_id=cid, user_id=bob, pin_order=-1),
        pb.UpdateMemberSettingsRequest(conversation_id=cid, user_id=bob, muted_until=-5),
        pb.UpdateMemberSettingsRequest(conversation_id=cid, user_id=""),
    ):
        await _refused(
            members.UpdateMemberSettings(bad, metadata=AUTH),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid",
        )
    await _refused(
        members.GetUnreadState(pb.GetUnreadStateRequest(user_id=bob)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
