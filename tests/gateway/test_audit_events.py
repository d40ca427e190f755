"""Every kind of audit record, made by its real source over real sockets, on both stores.

A WebSocket client or a gRPC caller does what a security event is about (an expired
token, a refused right, a spent rate limit, a membership change, a bad service token);
the record is then read back from the node's store, where ``whispr audit`` reads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from websockets.exceptions import InvalidStatus

from tests.gateway.conftest import EACH_STORE, RunningNode, node_on_store, unique
from tests.grpc.conftest import TOKENS, grpc_env
from whispr.audit import AuditKind, AuditRecord
from whispr.client import PhoenixClient, ReplyError
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

RATE_LIMIT = 3


@pytest.fixture(params=EACH_STORE)
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A node with gRPC callers and a low message rate limit."""
    env = grpc_env(WHISPR_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT))
    async with node_on_store(request, tmp_path, env) as running:
        yield running


async def records_of(
    node: RunningNode, user: str | None, kind: AuditKind, *, expected: int = 1
) -> list[AuditRecord]:
    """``user``'s records of ``kind`` in the node's store, once ``expected`` are there
    (the writer stores them in the background), or whatever is there after 10 s."""
    store = node.node.store.get().audit
    deadline = time.monotonic() + 10
    while True:
        page = await store.audit_page(
            since=time.time() - 600, until=time.time() + 60, user_id=user, kinds=[kind]
        )
        if len(page) >= expected or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.05)


def _grpc(node: RunningNode) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{node.node.grpc.get().port}")


def _auth(caller: str = "users") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[caller]}"),)


async def test_an_expired_token_at_connect_is_a_token_refused_record(node: RunningNode) -> None:
    ada = unique("ada")
    with pytest.raises(InvalidStatus):
        async with PhoenixClient.connect(node.url, node.token(ada, "phone", ttl_s=-120)):
            pass
    with pytest.raises(InvalidStatus):
        async with PhoenixClient.connect(node.url, "not-a-jwt"):
            pass
    [record] = await records_of(node, ada, AuditKind.TOKEN_REFUSED)
    assert record.reason == "token expired"
    assert record.source == "websocket"
    assert record.peer == "127.0.0.1"
    assert record.node == node.settings.node_name
    assert record.details == {"error": "unauthorized", "on": "connect"}
    anonymous = await records_of(node, None, AuditKind.TOKEN_REFUSED, expected=2)
    assert any(r.user_id is None and r.reason.startswith("invalid token") for r in anonymous)


async def test_a_token_expiring_on_an_open_connection_is_a_token_refused_record(
    node: RunningNode,
) -> None:
    ada = unique("ada")
    token = node.token(ada, "laptop", ttl_s=1)
    async with PhoenixClient.connect(node.url, token, heartbeat_s=3600) as client:
        await client.join(f"user:{ada}")
        await asyncio.sleep(2.1)  # past the token's whole-second expiry
        with pytest.raises((ConnectionError, ReplyError)):
            await client.push(f"user:{ada}", "list_conversations", {})
        await asyncio.wait_for(client.wait_closed(), 5)
    [record] = await records_of(node, ada, AuditKind.TOKEN_REFUSED)
    assert record.reason == "token expired"
    assert record.details == {"device_id": "laptop", "on": "open connection"}


async def test_forbidden_and_not_member_replies_are_permission_denied_records(
    node: RunningNode,
) -> None:
    ada, bob, eve = unique("ada"), unique("bob"), unique("eve")
    cid = (await node.node.messaging.get().create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob) as b, node.client(eve) as e:
        await a.join(topic)
        await b.join(topic)
        sent = await a.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
        with pytest.raises(ReplyError):  # only the sender may edit
            await b.push(topic, "edit_message", {"seq": sent["seq"], "content": "mine now"})
        with pytest.raises(ReplyError):  # not a member
            await e.join(topic)
    [edit] = await records_of(node, bob, AuditKind.PERMISSION_DENIED)
    assert edit.reason == "only the sender may edit a message"
    assert edit.details["error"] == "forbidden"
    assert (edit.details["topic"], edit.details["event"]) == (topic, "edit_message")
    [join] = await records_of(node, eve, AuditKind.PERMISSION_DENIED)
    assert join.details["error"] == "not_member"
    assert (join.details["topic"], join.details["event"]) == (topic, "phx_join")


async def test_a_send_over_the_rate_limit_is_a_rate_limited_record(node: RunningNode) -> None:
    ada = unique("ada")
    cid = (await node.node.messaging.get().create_group(ada, "t", [])).id
    topic = f"conversation:{cid}"
    async with node.client(ada) as client:
        await client.join(topic)
        for i in range(RATE_LIMIT):
            await client.push(topic, "send_message", {"client_id": f"m{i}", "content": "x"})
        for i in range(3):
            with pytest.raises(ReplyError) as caught:
                await client.push(topic, "send_message", {"client_id": f"n{i}", "content": "x"})
            assert caught.value.response["reason"] == "rate_limited"
    # One record for the three refusals: a user's rate-limit refusals are recorded once
    # per RATE_LIMITED_EVERY_S (the next record counts those left out).
    [record] = await records_of(node, ada, AuditKind.RATE_LIMITED)
    assert record.reason == f"at most {RATE_LIMIT} messages per minute"
    assert record.details["event"] == "send_message"
    assert record.details["suppressed"] == 0


async def test_a_bad_service_token_is_a_grpc_auth_failed_record(node: RunningNode) -> None:
    async with _grpc(node) as channel:
        stub: Any = pb_grpc.MessagingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetUnreadCounts(
                pb.GetUnreadCountsRequest(user_id="ada"),
                metadata=(("authorization", "Bearer guessed-token"),),
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    records = await records_of(node, None, AuditKind.GRPC_AUTH_FAILED)
    [record] = [r for r in records if r.details.get("method") == "GetUnreadCounts"]
    assert record.reason == "unknown token"
    assert record.source == "grpc"
    assert record.actor is None
    assert record.peer is not None
    assert "127.0.0.1" in record.peer


async def test_membership_changes_and_a_grpc_refusal_are_recorded(node: RunningNode) -> None:
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    async with node.client(ada) as client:  # a group made over the WebSocket
        await client.join(f"user:{ada}")
        created = await client.push(
            f"user:{ada}",
            "create_conversation",
            {"kind": "group", "title": "t", "members": [bob]},
        )
    cid = created["conversation"]["id"]
    async with _grpc(node) as channel:
        stub: Any = pb_grpc.MessagingServiceStub(channel)
        await stub.AddMembers(
            pb.AddMembersRequest(conversation_id=cid, user_ids=[cy]), metadata=_auth()
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # a plain member removing one
            await stub.RemoveMember(
                pb.RemoveMemberRequest(conversation_id=cid, user_id=bob, acting_user_id=cy),
                metadata=_auth(),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await stub.RemoveMember(
            pb.RemoveMemberRequest(conversation_id=cid, user_id=ada), metadata=_auth()
        )

    def changes(records: list[AuditRecord]) -> list[tuple[str, str | None, Any]]:
        return [(r.reason, r.actor, r.details["role"]) for r in records]

    kind = AuditKind.MEMBERSHIP_CHANGED
    assert changes(await records_of(node, ada, kind, expected=2)) == [
        ("added", ada, "owner"),
        ("removed", "service:users", None),
    ]
    # The owner left: bob, the earliest member, was handed the group.
    assert changes(await records_of(node, bob, kind, expected=2)) == [
        ("added", ada, "member"),
        ("role_changed", "system", "owner"),
    ]
    assert changes(await records_of(node, cy, kind)) == [("added", "service:users", "member")]
    every = await records_of(node, None, kind, expected=5)
    assert len(every) == 5
    assert {(r.details["conversation_id"], r.source) for r in every} == {(cid, "conversation")}
    [denied] = await records_of(node, cy, AuditKind.PERMISSION_DENIED)
    assert denied.source == "grpc"
    assert denied.actor == "users"
    assert denied.details == {"error": "forbidden", "method": "RemoveMember"}


async def test_successful_traffic_records_nothing(node: RunningNode) -> None:
    # The hot path (joins, sends, reads) never reaches the audit log: only refusals
    # and membership changes do.
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        await b.join(topic, {"last_seq": 0})
        for i in range(RATE_LIMIT):
            sent = await a.push(topic, "send_message", {"client_id": f"m{i}", "content": "x"})
            await b.push(topic, "mark_read", {"seq": sent["seq"]})
        await b.push(topic, "history", {})
    audit = node.node.audit.get()
    assert audit.queued == 0
    store = node.node.store.get().audit
    await asyncio.sleep(0.2)
    for user in (ada, bob):
        page = await store.audit_page(since=0, until=time.time() + 60, user_id=user)
        assert {r.kind for r in page} == {AuditKind.MEMBERSHIP_CHANGED}  # the group's creation
