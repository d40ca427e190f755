"""The server API for backends and user presence, on two nodes sharing PostgreSQL and Redis.

Clients connect over real sockets to either node; the backend calls ``whispr.server.v1``
on node A; what it does must reach the clients of node B too (presence, disconnects,
revocations, publishes), and revocations must hold after node B restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from websockets.exceptions import InvalidStatus

from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from tests.grpc.conftest import GrpcNode, grpc_env
from whispr.auth import issue_token
from whispr.client import PhoenixClient, ReplyError
from whispr.grpc.gen.whispr.server.v1 import server_pb2 as pb
from whispr.grpc.gen.whispr.server.v1 import server_pb2_grpc as pb_grpc
from whispr.protocol import CloseCode

pytestmark = pytest.mark.services

AUTH = GrpcNode.auth()


@dataclass
class Pair:
    a: RunningNode
    b: RunningNode
    env: dict[str, str]

    def api(self, node: RunningNode) -> tuple[grpc.aio.Channel, Any]:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{node.node.grpc.get().port}")
        return channel, pb_grpc.ServerApiStub(channel)


@pytest.fixture
async def pair(postgres_url: str, redis_url: str) -> AsyncIterator[Pair]:
    async with services.private_schema(postgres_url) as schema:
        env = grpc_env(
            WHISPR_DATABASE_URL=schema.url,
            WHISPR_REDIS_URL=redis_url,
            WHISPR_REDIS_PREFIX=unique("server-api"),
        )
        a = await start_node({**env, "WHISPR_NODE_NAME": unique("a")})
        b = await start_node({**env, "WHISPR_NODE_NAME": unique("b")})
        pair = Pair(a, b, env)
        try:
            yield pair
        finally:
            await stop_tree(pair.b.root, deadline=10)
            await stop_tree(pair.a.root, deadline=10)


async def _direct(client: PhoenixClient, user: str, other: str) -> str:
    await client.join(f"user:{user}")
    created = await client.push(
        f"user:{user}", "create_conversation", {"kind": "direct", "with_user": other}
    )
    return str(created["conversation"]["id"])


async def _presence_diff(client: PhoenixClient, topic: str) -> dict[str, Any]:
    event = await client.next_event(topic, "presence_diff")
    payload: dict[str, Any] = event.payload
    return payload


def _meta(diff: dict[str, Any], user: str) -> dict[str, Any]:
    metas = diff["joins"][user]["metas"]
    assert len(metas) == 1
    meta: dict[str, Any] = metas[0]
    return meta


async def test_a_user_with_devices_on_both_nodes_is_seen_by_a_contact(pair: Pair) -> None:
    ada, bob, dave = unique("ada"), unique("bob"), unique("dave")
    channel, api = pair.api(pair.a)
    async with channel, pair.a.client(bob, "phone") as b:
        await _direct(b, bob, ada)
        state = await b.next_event(f"user:{bob}", "presence_state")
        assert state.payload == {}  # ada has never been seen

        async with pair.a.client(ada, "laptop") as laptop:
            await laptop.join(f"user:{ada}")
            joined = _meta(await _presence_diff(b, f"user:{bob}"), ada)
            assert joined["status"] == "online"
            assert joined["last_seen"] is None

            async with pair.b.client(ada, "phone") as phone:
                await phone.join(f"user:{ada}")
                found = await api.QueryPresence(
                    pb.QueryPresenceRequest(user_ids=[ada, bob, ada]), metadata=AUTH
                )
                assert [(u.user_id, u.status) for u in found.users] == [
                    (ada, pb.PRESENCE_STATUS_ONLINE),
                    (bob, pb.PRESENCE_STATUS_ONLINE),
                ]
                # A non-contact is not told about ada.
                async with pair.b.client(dave) as d:
                    await d.join(f"user:{dave}")
                    assert (await d.next_event(f"user:{dave}", "presence_state")).payload == {}
            # ada's laptop on node A is still online: no change for bob.
            await asyncio.sleep(0.3)
            assert b.drain_events(f"user:{bob}") == []
            found = await api.QueryPresence(pb.QueryPresenceRequest(user_ids=[ada]), metadata=AUTH)
            assert found.users[0].status == pb.PRESENCE_STATUS_ONLINE

        before = time.time()
        diff = await _presence_diff(b, f"user:{bob}")
        left = _meta(diff, ada)
        assert left["status"] == "offline"
        assert before - 1 <= left["last_seen"] <= time.time() + 1
        assert diff["leaves"][ada]["metas"][0]["phx_ref"] == joined["phx_ref"]
        found = await api.QueryPresence(pb.QueryPresenceRequest(user_ids=[ada]), metadata=AUTH)
        assert found.users[0].status == pb.PRESENCE_STATUS_OFFLINE
        assert found.users[0].last_seen == pytest.approx(left["last_seen"], abs=0.01)

        # A contact who joins later gets ada's state at once, from node B.
        async with pair.b.client(bob, "tablet") as tablet:
            await tablet.join(f"user:{bob}")
            state = await tablet.next_event(f"user:{bob}", "presence_state")
            assert state.payload[ada]["metas"][0]["status"] == "offline"


async def test_away_invisible_and_a_hidden_last_seen(pair: Pair) -> None:
    ada, bob = unique("ada"), unique("bob")
    channel, api = pair.api(pair.b)
    async with channel, pair.b.client(bob) as b, pair.a.client(ada) as a:
        await _direct(b, bob, ada)
        await b.next_event(f"user:{bob}", "presence_state")
        topic = f"user:{ada}"
        await a.join(topic)
        assert _meta(await _presence_diff(b, f"user:{bob}"), ada)["status"] == "online"

        reply = await a.push(topic, "update_presence", {"status": "away"})
        assert reply == {"status": "away", "hide_last_seen": False}
        assert _meta(await _presence_diff(b, f"user:{bob}"), ada)["status"] == "away"

        await a.push(topic, "update_presence", {"status": "invisible"})
        invisible = _meta(await _presence_diff(b, f"user:{bob}"), ada)
        assert invisible["status"] == "offline"
        assert isinstance(invisible["last_seen"], float)

        reply = await a.push(topic, "update_presence", {"hide_last_seen": True})
        assert reply == {"status": "invisible", "hide_last_seen": True}
        hidden = _meta(await _presence_diff(b, f"user:{bob}"), ada)
        assert hidden == {**hidden, "status": "offline", "last_seen": None}
        found = await api.QueryPresence(pb.QueryPresenceRequest(user_ids=[ada]), metadata=AUTH)
        assert found.users[0].last_seen_hidden
        assert found.users[0].last_seen == pytest.approx(invisible["last_seen"], abs=0.01)

        # The setting is stored: a new connection of ada keeps it hidden.
        await a.push(topic, "update_presence", {"status": "online"})
        assert _meta(await _presence_diff(b, f"user:{bob}"), ada)["status"] == "online"
    async with pair.a.client(ada) as again, pair.b.client(bob) as b2:
        reply = await again.join(f"user:{ada}")
        assert (await again.push(f"user:{ada}", "update_presence", {}))["hide_last_seen"]
        await b2.join(f"user:{bob}")
        state = await b2.next_event(f"user:{bob}", "presence_state")
        assert state.payload[ada]["metas"][0]["status"] == "online"
    async with pair.a.client(ada) as bad:
        await bad.join(f"user:{ada}")
        with pytest.raises(ReplyError) as refused:
            await bad.push(f"user:{ada}", "update_presence", {"status": "busy"})
        assert refused.value.reason == "invalid"


async def test_a_disconnect_through_node_a_closes_the_device_on_node_b(pair: Pair) -> None:
    ada = unique("ada")
    channel, api = pair.api(pair.a)
    async with (
        channel,
        pair.b.client(ada, "phone") as phone,
        pair.b.client(ada, "laptop") as laptop,
    ):
        await phone.join(f"user:{ada}")
        await laptop.join(f"user:{ada}")
        await api.Disconnect(
            pb.DisconnectRequest(user_id=ada, device_id="phone", reason="device removed"),
            metadata=AUTH,
        )
        async with asyncio.timeout(5):
            assert await phone.wait_closed() == (CloseCode.DISCONNECTED, "device removed")
        assert laptop.closed is None
        await laptop.push(f"user:{ada}", "list_conversations", {})

        await api.Disconnect(pb.DisconnectRequest(user_id=ada, reason="banned"), metadata=AUTH)
        async with asyncio.timeout(5):
            assert await laptop.wait_closed() == (4001, "banned")

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.Disconnect(pb.DisconnectRequest(reason="x" * 121), metadata=AUTH)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def _refused(node: RunningNode, token: str) -> str:
    with pytest.raises(InvalidStatus) as refused:
        async with PhoenixClient.connect(node.url, token):
            pass
    assert refused.value.response.status_code == 401
    return refused.value.response.body.decode()


async def test_revoked_tokens_are_refused_on_both_nodes_and_after_a_restart(pair: Pair) -> None:
    ada, bob = unique("ada"), unique("bob")
    secret = pair.a.settings.jwt_secret
    old = issue_token(ada, secret=secret, device_id="phone")
    kept = issue_token(bob, secret=secret, device_id="phone", jti="bob-1")
    stolen = issue_token(bob, secret=secret, device_id="laptop", jti="bob-2")
    channel, api = pair.api(pair.a)
    async with (
        channel,
        PhoenixClient.connect(pair.b.url, old) as open_on_b,
        PhoenixClient.connect(pair.b.url, kept) as bob_phone,
        PhoenixClient.connect(pair.a.url, stolen) as bob_laptop,
    ):
        answer = await api.RevokeTokens(
            pb.RevokeTokensRequest(kind=pb.REVOCATION_KIND_USER, user_id=ada), metadata=AUTH
        )
        assert answer.revocation_id
        async with asyncio.timeout(5):
            assert await open_on_b.wait_closed() == (4001, "token revoked")
        for node in (pair.a, pair.b):
            assert "token revoked" in await _refused(node, old)

        await api.RevokeTokens(
            pb.RevokeTokensRequest(kind=pb.REVOCATION_KIND_JTI, jti="bob-2", reason="stolen"),
            metadata=AUTH,
        )
        async with asyncio.timeout(5):
            assert await bob_laptop.wait_closed() == (4001, "stolen")
        assert bob_phone.closed is None
        for node in (pair.a, pair.b):
            assert "stolen" in await _refused(node, stolen)

        await api.RevokeTokens(
            pb.RevokeTokensRequest(kind=pb.REVOCATION_KIND_DEVICE, user_id=bob, device_id="tv"),
            metadata=AUTH,
        )
        await asyncio.sleep(0.3)
        assert bob_phone.closed is None  # another device

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.RevokeTokens(
                pb.RevokeTokensRequest(kind=pb.REVOCATION_KIND_DEVICE, user_id=bob),
                metadata=AUTH,
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    # A token issued in a later second than the revocation is taken.
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.05)
    fresh = issue_token(ada, secret=secret, device_id="phone")
    async with PhoenixClient.connect(pair.b.url, fresh) as c:
        await c.join(f"user:{ada}")

    # Node B restarts: the revocations were stored.
    await stop_tree(pair.b.root, deadline=10)
    pair.b = await start_node({**pair.env, "WHISPR_NODE_NAME": unique("b2")})
    assert "token revoked" in await _refused(pair.b, old)
    assert "stolen" in await _refused(pair.b, stolen)
    async with PhoenixClient.connect(pair.b.url, kept) as c:
        await c.join(f"user:{bob}")


async def test_a_publish_reaches_the_joined_client_on_the_other_node(pair: Pair) -> None:
    ada = unique("ada")
    channel, api = pair.api(pair.a)
    async with channel, pair.b.client(ada) as c:
        await c.join(f"notification:{ada}")
        await c.join(f"user:{ada}")
        payload = struct_pb2.Struct()
        payload.update({"title": "new follower", "count": 2})
        answer = await api.Publish(
            pb.PublishRequest(
                topic=pb.TOPIC_KIND_NOTIFICATION, user_id=ada, event="follow", payload=payload
            ),
            metadata=AUTH,
        )
        assert answer.topic == f"notification:{ada}"
        event = await c.next_event(f"notification:{ada}", "follow")
        assert event.payload == {"title": "new follower", "count": 2}

        await api.Publish(
            pb.PublishRequest(topic=pb.TOPIC_KIND_USER, user_id=ada, event="profile.updated"),
            metadata=AUTH,
        )
        assert (await c.next_event(f"user:{ada}", "profile.updated")).payload == {}

        for bad in (
            pb.PublishRequest(topic=pb.TOPIC_KIND_USER, user_id=ada, event="presence_diff"),
            pb.PublishRequest(topic=pb.TOPIC_KIND_USER, user_id=ada, event="phx_close"),
            pb.PublishRequest(topic=pb.TOPIC_KIND_USER, user_id=ada, event="Has Spaces"),
            pb.PublishRequest(user_id=ada, event="follow"),
            pb.PublishRequest(topic=pb.TOPIC_KIND_USER, event="follow"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await api.Publish(bad, metadata=AUTH)
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.Publish(pb.PublishRequest(), metadata=(("authorization", "Bearer nope"),))
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_presence_query_limit_and_list_conversations(pair: Pair) -> None:
    ada = unique("ada")
    others = [unique("u") for _ in range(3)]
    channel, api = pair.api(pair.b)
    async with channel, pair.a.client(ada) as a:
        ids = [await _direct(a, ada, other) for other in others]
        listed = await api.ListUserConversations(
            pb.ListUserConversationsRequest(user_id=ada, limit=2), metadata=AUTH
        )
        assert len(listed.conversations) == 2
        last = listed.conversations[-1]
        rest = await api.ListUserConversations(
            pb.ListUserConversationsRequest(
                user_id=ada, before=last.last_activity, before_id=last.conversation.id
            ),
            metadata=AUTH,
        )
        seen = [c.conversation.id for c in [*listed.conversations, *rest.conversations]]
        assert sorted(seen) == sorted(ids)
        assert {c.role for c in listed.conversations} == {"member"}

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.QueryPresence(
                pb.QueryPresenceRequest(user_ids=[f"u{i}" for i in range(1001)]), metadata=AUTH
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        never = await api.QueryPresence(pb.QueryPresenceRequest(user_ids=["nobody"]), metadata=AUTH)
        assert never.users[0].status == pb.PRESENCE_STATUS_OFFLINE
        assert never.users[0].last_seen == 0
