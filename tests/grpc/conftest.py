"""A node with its gRPC server on a free port, and channels to it.

``grpc_node`` runs twice: embedded (SQLite, in-process broker) and on the real
services (PostgreSQL in a private schema, Redis under a private key prefix).
Two callers are configured: ``moderation`` and ``users``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

TOKENS = {"moderation": "mod-token-0123456789", "users": "users-token-0123456789"}


@dataclass
class GrpcNode:
    running: RunningNode

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.node.grpc.get().port}"

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    @staticmethod
    def auth(caller: str = "moderation") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {TOKENS[caller]}"),)


def grpc_env(**extra: str) -> dict[str, str]:
    return {
        "WHISPR_GRPC_TOKENS": ",".join(f"{name}={token}" for name, token in TOKENS.items()),
        **extra,
    }


@pytest.fixture(params=["embedded", pytest.param("services", marks=pytest.mark.services)])
async def grpc_node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GrpcNode]:
    if request.param == "embedded":
        running = await start_node(grpc_env(WHISPR_SQLITE_PATH=str(tmp_path / "node.db")))
        yield GrpcNode(running)
        await stop_tree(running.root, deadline=10)
        return
    redis_url = request.getfixturevalue("redis_url")
    async with services.private_schema(request.getfixturevalue("postgres_url")) as schema:
        running = await start_node(
            grpc_env(
                WHISPR_DATABASE_URL=schema.url,
                WHISPR_REDIS_URL=redis_url,
                WHISPR_REDIS_PREFIX=unique("t"),
                WHISPR_NODE_NAME=unique("node"),
            )
        )
        yield GrpcNode(running)
        await stop_tree(running.root, deadline=10)


@pytest.fixture
async def stub(grpc_node: GrpcNode) -> AsyncIterator[Any]:
    async with grpc_node.channel() as channel:
        yield pb_grpc.MessagingServiceStub(channel)
