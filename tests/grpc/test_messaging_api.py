"""Every RPC of ``whispr.messaging.v1.MessagingService`` over a real socket.

Good calls, bad arguments, refusals and missing credentials, on the embedded
node and on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from actors.conversation import Draft
from actors.errors import WhisprError
from tests.gateway.conftest import unique
from tests.grpc.conftest import GrpcNode
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb

AUTH = GrpcNode.auth()
GROUP = pb.CONVERSATION_KIND_GROUP
DIRECT = pb.CONVERSATION_KIND_DIRECT


def _struct(**values: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


async def _refused(call: Any, code: grpc.StatusCode, reason: str | None = None) -> str:
    """Await ``call``; check it failed with ``code`` (and ``reason``); return the details."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, (error.code(), error.details())
    if reason is not None:
        trailing = dict(error.trailing_metadata() or ())
        assert trailing.get("whispr-reason") == reason, trailing
    return str(error.details())


async def _group(stub: Any, owner: str, *members: str) -> pb.CreateConversationResponse:
    return await stub.CreateConversation(
        pb.CreateConversationRequest(
            kind=GROUP, creator_id=owner, title="ops", member_ids=list(members)
        ),
        metadata=AUTH,
    )


async def test_create_and_get_a_group_and_a_direct_conversation(stub: Any) -> None:
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    created = await _group(stub, ada, bob, cy)
    assert created.conversation.kind == GROUP
    assert created.conversation.title == "ops"
    roles = {m.user_id: m.role for m in created.members}
    assert roles == {ada: "owner", bob: "member", cy: "member"}

    got = await stub.GetConversation(
        pb.GetConversationRequest(conversation_id=created.conversation.id), metadata=AUTH
    )
    assert got.conversation.id == created.conversation.id
    assert {m.user_id for m in got.members} == {ada, bob, cy}

    direct = await stub.CreateConversation(
        pb.CreateConversationRequest(kind=DIRECT, creator_id=ada, member_ids=[bob]), metadata=AUTH
    )
    again = await stub.CreateConversation(
        pb.CreateConversationRequest(kind=DIRECT, creator_id=bob, member_ids=[ada]), metadata=AUTH
    )
    assert direct.conversation.kind == DIRECT
    assert again.conversation.id == direct.conversation.id  # one per pair
    assert {m.user_id for m in again.members} == {ada, bob}


async def test_the_user_service_keeps_a_group_in_sync(stub: Any, grpc_node: GrpcNode) -> None:
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    cid = (await _group(stub, ada)).conversation.id
    users = GrpcNode.auth("users")

    added = await stub.AddMembers(
        pb.AddMembersRequest(conversation_id=cid, user_ids=[bob, cy]), metadata=users
    )
    assert sorted(m.user_id for m in added.added) == sorted([bob, cy])
    twice = await stub.AddMembers(
        pb.AddMembersRequest(conversation_id=cid, user_ids=[bob]), metadata=users
    )
    assert list(twice.added) == []  # idempotent

    removed = await stub.RemoveMember(
        pb.RemoveMemberRequest(conversation_id=cid, user_id=cy), metadata=users
    )
    assert removed.removed
    gone = await stub.RemoveMember(
        pb.RemoveMemberRequest(conversation_id=cid, user_id=cy), metadata=users
    )
    assert not gone.removed  # already out: nothing changed

    got = await stub.GetConversation(pb.GetConversationRequest(conversation_id=cid), metadata=AUTH)
    assert {m.user_id for m in got.members} == {ada, bob}
    # The changes are in the conversation's history, made by the service.
    page = await stub.ListMessages(pb.ListMessagesRequest(conversation_id=cid), metadata=AUTH)
    events = [(m.kind, m.metadata["by"]) for m in page.messages]
    assert ("system", "service:users") in events


async def test_an_acting_user_needs_the_role_for_a_membership_change(stub: Any) -> None:
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    cid = (await _group(stub, ada, bob)).conversation.id
    details = await _refused(
        stub.AddMembers(
            pb.AddMembersRequest(conversation_id=cid, user_ids=[cy], acting_user_id=bob),
            metadata=AUTH,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "forbidden",
    )
    assert "owner and admins" in details
    await _refused(
        stub.RemoveMember(
            pb.RemoveMemberRequest(conversation_id=cid, user_id=ada, acting_user_id=bob),
            metadata=AUTH,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "forbidden",
    )
    await _refused(
        stub.AddMembers(
            pb.AddMembersRequest(conversation_id=cid, user_ids=[cy], acting_user_id=cy),
            metadata=AUTH,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "not_member",
    )
    # The owner may.
    added = await stub.AddMembers(
        pb.AddMembersRequest(conversation_id=cid, user_ids=[cy], acting_user_id=ada), metadata=AUTH
    )
    assert [m.user_id for m in added.added] == [cy]


async def test_system_and_service_messages_are_sequenced_and_idempotent(
    stub: Any, grpc_node: GrpcNode
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = (await _group(stub, ada, bob)).conversation.id
    messaging = grpc_node.running.node.messaging.get()
    sent = await messaging.send(ada, cid, Draft(client_id="c1", content="hello"))

    system = await stub.SendSystemMessage(
        pb.SendSystemMessageRequest(
            conversation_id=cid, client_id="call-1", event="call_started", details=_struct(room="r")
        ),
        metadata=AUTH,
    )
    assert system.message.kind == "system"
    assert system.message.seq == sent.seq + 1
    assert system.message.metadata["event"] == "call_started"
    assert system.message.metadata["room"] == "r"
    assert system.message.metadata["service"] == "moderation"
    retried = await stub.SendSystemMessage(
        pb.SendSystemMessageRequest(conversation_id=cid, client_id="call-1", event="call_started"),
        metadata=AUTH,
    )
    assert (retried.message.id, retried.message.seq) == (system.message.id, system.message.seq)

    service = await stub.SendServiceMessage(
        pb.SendServiceMessageRequest(
            conversation_id=cid, client_id="notice-1", content="be kind", metadata=_struct(rule=3)
        ),
        metadata=AUTH,
    )
    assert service.message.sender_id == "service:moderation"
    assert service.message.kind == "text"
    assert service.message.seq == system.message.seq + 1
    retried = await stub.SendServiceMessage(
        pb.SendServiceMessageRequest(conversation_id=cid, client_id="notice-1", content="be kind"),
        metadata=AUTH,
    )
    assert retried.message.id == service.message.id

    # Members see both, in order, as any message.
    history = await messaging.history(bob, cid, after_seq=0)
    assert [m.seq for m in history] == [1, 2, 3]
    assert history[2].sender_id == "service:moderation"


async def test_list_messages_pages_both_ways(stub: Any, grpc_node: GrpcNode) -> None:
    ada = unique("ada")
    cid = (await _group(stub, ada)).conversation.id
    messaging = grpc_node.running.node.messaging.get()
    for n in range(1, 8):
        await messaging.send(ada, cid, Draft(client_id=f"c{n}", content=f"m{n}"))

    newest = await stub.ListMessages(
        pb.ListMessagesRequest(conversation_id=cid, limit=3), metadata=AUTH
    )
    assert [m.seq for m in newest.messages] == [5, 6, 7]
    before = await stub.ListMessages(
        pb.ListMessagesRequest(conversation_id=cid, before_seq=5, limit=3), metadata=AUTH
    )
    assert [m.seq for m in before.messages] == [2, 3, 4]
    after = await stub.ListMessages(
        pb.ListMessagesRequest(conversation_id=cid, after_seq=5), metadata=AUTH
    )
    assert [m.seq for m in after.messages] == [6, 7]
    assert after.messages[0].content == "m6"
    assert after.messages[0].sender_id == ada


async def test_unread_counts_follow_the_read_cursor(stub: Any, grpc_node: GrpcNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = (await _group(stub, ada, bob)).conversation.id
    messaging = grpc_node.running.node.messaging.get()
    for n in range(3):
        await messaging.send(ada, cid, Draft(client_id=f"c{n}", content="x"))
    counts = await stub.GetUnreadCounts(pb.GetUnreadCountsRequest(user_id=bob), metadata=AUTH)
    assert counts.unread[cid] == 3
    await messaging.mark_read(bob, cid, 2)
    counts = await stub.GetUnreadCounts(pb.GetUnreadCountsRequest(user_id=bob), metadata=AUTH)
    assert counts.unread[cid] == 1


async def test_follow_replays_then_streams_live_events(stub: Any, grpc_node: GrpcNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = (await _group(stub, ada, bob)).conversation.id
    messaging = grpc_node.running.node.messaging.get()
    for n in range(1, 4):
        await messaging.send(ada, cid, Draft(client_id=f"c{n}", content=f"m{n}"))

    call = stub.FollowConversation(
        pb.FollowConversationRequest(conversation_id=cid, after_seq=1), metadata=AUTH
    )
    received: list[pb.ConversationEvent] = []

    async def read(count: int) -> None:
        async for event in call:
            received.append(event)
            if len(received) == count:
                return

    reader = asyncio.create_task(read(5))
    # Replayed: seqs 2 and 3; then live: a message, an edit, a read receipt.
    for _ in range(200):
        if len(received) >= 2:
            break
        await asyncio.sleep(0.01)
    fourth = await messaging.send(bob, cid, Draft(client_id="c4", content="m4"))
    await messaging.edit(ada, cid, 2, "m2, edited")
    await messaging.mark_read(bob, cid, 4)
    await asyncio.wait_for(reader, 10)
    call.cancel()

    assert [(e.event, e.message.seq) for e in received[:3]] == [
        ("new_message", 2),
        ("new_message", 3),
        ("new_message", 4),
    ]
    assert received[2].message.id == fourth.id
    assert received[3].event == "message_edited"
    assert received[3].message.content == "m2, edited"
    assert received[4].event == "read"
    assert received[4].payload["user_id"] == bob


async def test_a_follower_that_falls_behind_is_told_to_resume(grpc_node: GrpcNode) -> None:
    from actors.events import conversation_topic, encode_event

    node = grpc_node.running.node
    cid = (await node.messaging.get().create_group(unique("ada"), "t", [])).id
    servicer = node.grpc.get().servicer
    servicer.follow_backlog = 3
    stream = servicer._follow(pb.FollowConversationRequest(conversation_id=cid))
    first = asyncio.ensure_future(anext(stream))  # subscribes, then waits for an event
    for _ in range(200):
        await asyncio.sleep(0.01)
        node.broker.get().publish(conversation_topic(cid), encode_event("typing", {"n": 0}))
        if first.done():
            break
    await first
    for n in range(10):  # nobody reads: the backlog fills
        node.broker.get().publish(conversation_topic(cid), encode_event("typing", {"n": n}))
    await asyncio.sleep(0.5)

    async def read_all() -> None:
        for _ in range(10):
            await anext(stream)

    with pytest.raises(WhisprError) as behind:
        await read_all()
    assert behind.value.reason == "rate_limited"
    assert "after_seq" in behind.value.message
    await stream.aclose()


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("CreateConversation", pb.CreateConversationRequest(kind=GROUP, creator_id="")),
        ("CreateConversation", pb.CreateConversationRequest(creator_id="ada")),
        (
            "CreateConversation",
            pb.CreateConversationRequest(kind=DIRECT, creator_id="ada", member_ids=["b", "c"]),
        ),
        (
            "CreateConversation",
            pb.CreateConversationRequest(kind=GROUP, creator_id="ada", title="x" * 1000),
        ),
        ("GetConversation", pb.GetConversationRequest()),
        ("AddMembers", pb.AddMembersRequest(conversation_id="x")),
        ("RemoveMember", pb.RemoveMemberRequest(conversation_id="x")),
        ("SendSystemMessage", pb.SendSystemMessageRequest(conversation_id="x", client_id="c")),
        (
            "SendSystemMessage",
            pb.SendSystemMessageRequest(conversation_id="x", client_id="c", event="no spaces"),
        ),
        ("SendServiceMessage", pb.SendServiceMessageRequest(conversation_id="x", client_id="c")),
        ("ListMessages", pb.ListMessagesRequest(conversation_id="x", before_seq=3, after_seq=1)),
        ("ListMessages", pb.ListMessagesRequest(conversation_id="x", limit=500)),
        ("ListMessages", pb.ListMessagesRequest(conversation_id="x", after_seq=-1)),
        ("GetUnreadCounts", pb.GetUnreadCountsRequest()),
    ],
)
async def test_bad_arguments_are_invalid_argument(stub: Any, method: str, request_: Any) -> None:
    details = await _refused(
        getattr(stub, method)(request_, metadata=AUTH), grpc.StatusCode.INVALID_ARGUMENT, "invalid"
    )
    assert details


async def test_bad_arguments_in_a_real_conversation_change_nothing(
    stub: Any, grpc_node: GrpcNode
) -> None:
    ada = unique("ada")
    cid = (await _group(stub, ada)).conversation.id
    await _refused(
        stub.SendServiceMessage(
            pb.SendServiceMessageRequest(conversation_id=cid, client_id="c", content="x" * 10_001),
            metadata=AUTH,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "too_large",
    )
    await _refused(
        stub.SendSystemMessage(
            pb.SendSystemMessageRequest(conversation_id=cid, client_id="c" * 65, event="e"),
            metadata=AUTH,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid",
    )
    page = await stub.ListMessages(pb.ListMessagesRequest(conversation_id=cid), metadata=AUTH)
    assert list(page.messages) == []


async def test_unknown_conversations_are_not_found(stub: Any) -> None:
    missing = unique("missing")
    calls = [
        stub.GetConversation(pb.GetConversationRequest(conversation_id=missing), metadata=AUTH),
        stub.AddMembers(
            pb.AddMembersRequest(conversation_id=missing, user_ids=["a"]), metadata=AUTH
        ),
        stub.RemoveMember(
            pb.RemoveMemberRequest(conversation_id=missing, user_id="a"), metadata=AUTH
        ),
        stub.SendSystemMessage(
            pb.SendSystemMessageRequest(conversation_id=missing, client_id="c", event="e"),
            metadata=AUTH,
        ),
        stub.SendServiceMessage(
            pb.SendServiceMessageRequest(conversation_id=missing, client_id="c", content="x"),
            metadata=AUTH,
        ),
        stub.ListMessages(pb.ListMessagesRequest(conversation_id=missing), metadata=AUTH),
    ]
    for call in calls:
        await _refused(call, grpc.StatusCode.NOT_FOUND, "not_found")
    stream = stub.FollowConversation(
        pb.FollowConversationRequest(conversation_id=missing), metadata=AUTH
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


_EVERY_CALL = [
    ("CreateConversation", pb.CreateConversationRequest(kind=GROUP, creator_id="ada")),
    ("GetConversation", pb.GetConversationRequest(conversation_id="x")),
    ("AddMembers", pb.AddMembersRequest(conversation_id="x", user_ids=["b"])),
    ("RemoveMember", pb.RemoveMemberRequest(conversation_id="x", user_id="b")),
    ("SendSystemMessage", pb.SendSystemMessageRequest(conversation_id="x", client_id="c")),
    ("SendServiceMessage", pb.SendServiceMessageRequest(conversation_id="x", client_id="c")),
    ("ListMessages", pb.ListMessagesRequest(conversation_id="x")),
    ("GetUnreadCounts", pb.GetUnreadCountsRequest(user_id="ada")),
]


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token"),),
        (("authorization", "Basic bW9kOnRva2Vu"),),
        (("authorization", "Bearer "),),
    ],
    ids=["none", "unknown-token", "not-bearer", "empty"],
)
async def test_calls_without_valid_credentials_are_unauthenticated(
    stub: Any, grpc_node: GrpcNode, metadata: tuple[tuple[str, str], ...]
) -> None:
    messaging = grpc_node.running.node.messaging.get()
    for method, request_ in _EVERY_CALL:
        await _refused(
            getattr(stub, method)(request_, metadata=metadata),
            grpc.StatusCode.UNAUTHENTICATED,
            "unauthorized",
        )
    stream = stub.FollowConversation(
        pb.FollowConversationRequest(conversation_id="x"), metadata=metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nothing was created by the refused CreateConversation.
    assert await messaging.list_conversations("ada") == []


async def test_a_store_outage_is_unavailable_and_a_retry_succeeds(
    stub: Any, grpc_node: GrpcNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = unique("ada")
    cid = (await _group(stub, ada)).conversation.id
    commit = grpc_node.running.node.store.get().commit

    async def down(_batch: Any) -> Any:
        raise ConnectionError("the store is down")

    request = pb.SendServiceMessageRequest(conversation_id=cid, client_id="n1", content="hi")
    monkeypatch.setattr(commit, "_flush", down)
    await _refused(
        stub.SendServiceMessage(request, metadata=AUTH),
        grpc.StatusCode.UNAVAILABLE,
        "unavailable",
    )
    monkeypatch.undo()
    sent = await stub.SendServiceMessage(request, metadata=AUTH)  # the caller's retry
    assert sent.message.seq == 1
