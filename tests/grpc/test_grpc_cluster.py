"""The gRPC API on two node processes: a node SIGKILLed while a service sends loses nothing.

A caller (a sibling service) sends system messages to node A, each with its own client id,
retrying on node B whatever A did not answer. A is killed in the middle. Every message
acknowledged by either node is in the store exactly once, seqs are gap-free, and a
follower on node B saw every one of them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests import services
from tests.gateway.conftest import unique
from whispr.bench.nodes import NodeProcess, free_port, start_node_process
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.services, pytest.mark.chaos]

TOKEN = "cluster-caller-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture
async def two_nodes(
    postgres_url: str, redis_url: str
) -> AsyncIterator[list[tuple[NodeProcess, str]]]:
    async with services.private_schema(postgres_url) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("grpc-cluster"),
            "WHISPR_GRPC_TOKENS": f"ops={TOKEN}",
        }
        nodes: list[tuple[NodeProcess, str]] = []
        try:
            for name in ("a", "b"):
                port = free_port()
                node = await start_node_process(
                    unique(name), {**env, "WHISPR_GRPC_PORT": str(port)}, timeout=30
                )
                nodes.append((node, f"127.0.0.1:{port}"))
            yield nodes
        finally:
            for node, _ in nodes:
                if node.process.returncode is None:
                    node.process.kill()
                await node.process.wait()


async def test_a_killed_node_loses_no_acknowledged_message(
    two_nodes: list[tuple[NodeProcess, str]],
) -> None:
    (node_a, address_a), (_node_b, address_b) = two_nodes
    total = 120
    async with (
        grpc.aio.insecure_channel(address_a) as channel_a,
        grpc.aio.insecure_channel(address_b) as channel_b,
    ):
        a: Any = pb_grpc.MessagingServiceStub(channel_a)
        b: Any = pb_grpc.MessagingServiceStub(channel_b)
        created = await b.CreateConversation(
            pb.CreateConversationRequest(
                kind=pb.CONVERSATION_KIND_GROUP, creator_id=unique("ada"), title="ops"
            ),
            metadata=AUTH,
        )
        cid = created.conversation.id

        # A follower on node B, from the start.
        followed: list[pb.ConversationEvent] = []
        follow = b.FollowConversation(
            pb.FollowConversationRequest(conversation_id=cid), metadata=AUTH
        )

        async def read() -> None:
            async for event in follow:
                if event.event == "new_message":
                    followed.append(event)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.3)  # the follower is subscribed

        acknowledged: dict[str, pb.Message] = {}
        third = asyncio.Event()
        retried_on_b = 0

        async def send(n: int) -> None:
            nonlocal retried_on_b
            request = pb.SendSystemMessageRequest(
                conversation_id=cid, client_id=f"deploy-{n}", event="deployed"
            )
            try:
                answer = await a.SendSystemMessage(request, metadata=AUTH, timeout=5)
            except grpc.aio.AioRpcError:
                # Node A is gone (or the answer was lost): the same call, on node B.
                retried_on_b += 1
                answer = await b.SendSystemMessage(request, metadata=AUTH, timeout=10)
            acknowledged[request.client_id] = answer.message
            if len(acknowledged) >= total // 3:
                third.set()

        async def sender(first: int) -> None:
            for n in range(first, total, 4):
                await send(n)

        async def killer() -> None:
            await third.wait()
            node_a.process.kill()

        await asyncio.wait_for(asyncio.gather(*(sender(i) for i in range(4)), killer()), 60)
        assert await node_a.process.wait() != 0  # killed, not stopped
        assert retried_on_b >= total // 2  # the rest went to B after the kill
        assert len(acknowledged) == total

        # The store: every acknowledged message once, and nothing else; seqs 1..N.
        page = await b.ListMessages(
            pb.ListMessagesRequest(conversation_id=cid, after_seq=0, limit=200), metadata=AUTH
        )
        stored = [m for m in page.messages if m.metadata["event"] == "deployed"]
        assert sorted(m.client_id for m in stored) == sorted(acknowledged)
        assert [m.seq for m in page.messages] == list(range(1, len(page.messages) + 1))
        for message in stored:  # each answer named the message that was stored
            assert acknowledged[message.client_id].id == message.id
            assert acknowledged[message.client_id].seq == message.seq

        # The follower on B saw each, in order, without repeats.
        for _ in range(300):
            if len(followed) >= len(page.messages):
                break
            await asyncio.sleep(0.02)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await reader
        seqs = [e.message.seq for e in followed]
        assert seqs == sorted(set(seqs))
        assert set(seqs) == {m.seq for m in page.messages}
