"""A running node with its gateway on an ephemeral port, and clients for it.

``node`` runs twice: embedded (SQLite, in-process broker) and on the real services
(PostgreSQL in a private schema, Redis under a private key prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from supervisors import Ref, stop_tree
from tests import services
from whispr.auth import issue_token
from whispr.bench.nodes import free_port
from whispr.client import PhoenixClient
from whispr.config import Settings, load_settings
from whispr.node import Node, start_root


@dataclass
class RunningNode:
    node: Node
    root: Ref[Any]

    @property
    def settings(self) -> Settings:
        return self.node.settings

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.node.gateway.get().port}/socket/websocket"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.node.gateway.get().port}"

    def token(self, user_id: str, device_id: str | None = None, ttl_s: float = 3600) -> str:
        return issue_token(
            user_id, secret=self.settings.jwt_secret, device_id=device_id, ttl_s=ttl_s
        )

    def client(
        self, user_id: str, device_id: str | None = None, **options: Any
    ) -> AbstractAsyncContextManager[PhoenixClient]:
        return PhoenixClient.connect(self.url, self.token(user_id, device_id), **options)


async def start_node(env: dict[str, str]) -> RunningNode:
    settings = load_settings(
        env={
            "WHISPR_HOST": "127.0.0.1",
            "WHISPR_PORT": "0",
            "WHISPR_GRPC_PORT": str(free_port()),
            "WHISPR_HTTP_PORT": str(free_port()),
            **env,
        }
    )
    node = Node(settings)
    root = start_root(node)
    await root.started()
    return RunningNode(node, root)


def unique(prefix: str) -> str:
    """An id no other test (or earlier run) uses: Redis is shared."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


#: The two stores a ``node`` fixture runs each test on.
EACH_STORE = ["embedded", pytest.param("services", marks=pytest.mark.services)]


@asynccontextmanager
async def node_on_store(
    request: pytest.FixtureRequest, tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[RunningNode]:
    """One node with ``env`` on the store ``request.param`` names (a fixture parametrized
    with :data:`EACH_STORE`): embedded SQLite, or a private PostgreSQL schema and Redis."""
    env = env or {}
    if request.param == "embedded":
        running = await start_node({**env, "WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
        try:
            yield running
        finally:
            await stop_tree(running.root, deadline=10)
        return
    redis_url = request.getfixturevalue("redis_url")
    async with services.private_schema(request.getfixturevalue("postgres_url")) as schema:
        running = await start_node(
            {
                **env,
                "WHISPR_DATABASE_URL": schema.url,
                "WHISPR_REDIS_URL": redis_url,
                "WHISPR_REDIS_PREFIX": unique("t"),
                "WHISPR_NODE_NAME": unique("node"),
            }
        )
        try:
            yield running
        finally:
            await stop_tree(running.root, deadline=10)


@pytest.fixture(params=EACH_STORE)
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with node_on_store(request, tmp_path) as running:
        yield running
