"""Two node processes serve one store's schedules; the one dispatching is killed with SIGKILL.

Each node is a real ``whispr serve`` process on one PostgreSQL schema and Redis prefix. Both
schedulers wake at the same due time and claim the due schedules between them (``FOR UPDATE
SKIP LOCKED``); node A is killed with SIGKILL while it sends. The schedules it held claimed
are left to their lease, then node B claims and sends them. Each schedule becomes exactly
one message: none lost, none twice (a claim retried after A wrote its message finds that
message by the client id derived from the schedule's id).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests import services
from tests.gateway.conftest import unique
from whispr.auth import issue_token
from whispr.bench.nodes import NodeProcess, start_node_process
from whispr.client import PhoenixClient
from whispr.config import DEV_JWT_SECRET

pytestmark = pytest.mark.services

#: Schedules per author (the most one member may hold in one conversation), and authors.
PER_AUTHOR = 100
AUTHORS = 3
LEASE_S = 5.0


def _token(user: str, device: str) -> str:
    return issue_token(user, secret=DEV_JWT_SECRET, device_id=device)


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[services.PgSchema]:
    async with services.private_schema(postgres_url) as created:
        yield created


async def _fetch(schema: services.PgSchema, query: str, *args: Any) -> list[Any]:
    connection = await asyncpg.connect(schema.base_url, server_settings=schema.server_settings)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def test_each_due_schedule_is_sent_once_when_the_dispatching_node_is_killed(
    schema: services.PgSchema, redis_url: str
) -> None:
    env = {
        "WHISPR_DATABASE_URL": schema.url,
        "WHISPR_REDIS_URL": redis_url,
        "WHISPR_REDIS_PREFIX": unique("sched"),
        "WHISPR_SCHEDULER_LEASE_S": str(LEASE_S),
        "WHISPR_RATE_LIMIT_PER_MINUTE": "100000",
        "WHISPR_MAX_CONNECTIONS_PER_IP": "1000",
    }
    started: list[NodeProcess] = []
    try:
        for name in ("node-a", "node-b"):
            started.append(await start_node_process(name, env, timeout=30))
        a, b = started
        authors = [unique(f"author{n}") for n in range(AUTHORS)]
        watcher = unique("watcher")
        async with PhoenixClient.connect(a.url, _token(authors[0], "setup")) as owner:
            await owner.join(f"user:{authors[0]}")
            created = await owner.push(
                f"user:{authors[0]}",
                "create_conversation",
                {"kind": "group", "title": "sched", "members": [*authors[1:], watcher]},
            )
        cid = str(created["conversation"]["id"])
        topic = f"conversation:{cid}"
        due = time.time() + 8.0
        expected = []
        for author in authors:
            async with PhoenixClient.connect(a.url, _token(author, "phone")) as client:
                await client.join(topic, {})
                for n in range(PER_AUTHOR):
                    content = f"{author}-{n}"
                    expected.append(content)
                    await client.push(
                        topic,
                        "schedule_message",
                        {"client_id": content, "content": content, "send_at": due + n / 1000},
                    )
        assert time.time() < due, "scheduling took longer than the margin before send_at"

        async with PhoenixClient.connect(b.url, _token(watcher, "web")) as on_b:
            await on_b.join(topic, {})
            first = await on_b.next_event(topic, "new_message", timeout=30)
            assert "scheduled" in first.payload["message"]["metadata"]
            a.process.kill()  # SIGKILL, mid-dispatch: both nodes claimed at the due time
            await a.process.wait()

            sent: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = await _fetch(
                    schema,
                    "SELECT content FROM messages WHERE conversation_id = $1 "
                    "AND metadata ? 'scheduled'",
                    cid,
                )
                sent = [row[0] for row in rows]
                pending = await _fetch(schema, "SELECT id FROM scheduled_messages")
                if len(sent) >= len(expected) and not pending:
                    break
                await asyncio.sleep(0.25)
            assert Counter(sent) == Counter(expected)  # each one exactly once
            assert await _fetch(schema, "SELECT id FROM scheduled_messages") == []

            # Node B's history shows each of them once.
            history: list[dict[str, Any]] = []
            while True:
                after = history[-1]["seq"] if history else 0
                page = await on_b.push(topic, "history", {"after_seq": after, "limit": 200})
                if not page["messages"]:
                    break
                history += page["messages"]
            scheduled = [m for m in history if "scheduled" in m["metadata"]]
            assert sorted(m["content"] for m in scheduled) == sorted(expected)
            # Those node A held claimed when it died went once their lease ran out, sent by
            # node B: at least about the lease after their send_at, and marked late.
            taken_over = [
                m
                for m in scheduled
                if m["created_at"] - m["metadata"]["scheduled"]["send_at"] >= LEASE_S * 0.8
            ]
            assert taken_over, "node A held no claim when it was killed"
            assert all(m["metadata"]["scheduled"]["late"] for m in taken_over)
    finally:
        for node in started:
            if node.process.returncode is None:
                node.process.kill()
            await node.process.wait()
