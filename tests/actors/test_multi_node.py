"""Two node processes on one PostgreSQL and Redis, sending to the same conversation."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.events import decode_event, payload_of
from tests.actors.conftest import build_stack
from tests.services import PgSchema
from whispr.broker import RedisBroker
from whispr.store.postgres import PostgresStore

ROOT = Path(__file__).resolve().parents[2]
THEIRS = 600
MINE = 100


async def test_two_processes_make_one_gap_free_order_seen_by_both(
    pg_schema: PgSchema, redis_url: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = PostgresStore(pg_schema.base_url, server_settings=pg_schema.server_settings)
    await store.open()
    await store.migrate()
    broker = RedisBroker(redis_url, node_id="here", prefix=prefix)
    await broker.open()
    stack = await build_stack(store, broker)  # type: ignore[arg-type]
    other: asyncio.subprocess.Process | None = None
    try:
        group = await stack.messaging.create_group("alice", "Cluster", ["bob"])
        seen: list[tuple[str, int]] = []

        def record(_topic: str, data: bytes) -> None:
            event = decode_event(data)
            name, payload = event.name, payload_of(event)
            if name == "new_message":
                seen.append((payload["message"]["content"], payload["message"]["seq"]))

        await broker.subscribe(f"conversation:{group.id}", record)
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.actors._node_process",
            pg_schema.base_url,
            pg_schema.schema,
            redis_url,
            prefix,
            group.id,
            "bob",
            str(THEIRS),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2000):  # start once the other node is sending
            if seen:
                break
            await asyncio.sleep(0.01)
        mine = []
        for n in range(MINE):
            draft = Draft(client_id=f"alice-{n}", content=f"alice-{n}")
            for _attempt in range(50):  # as a client does: retry with the same client id
                try:
                    sent = await stack.messaging.send("alice", group.id, draft)
                    break
                except WhisprError as exc:
                    if exc.reason is not Reason.UNAVAILABLE:
                        raise
            else:
                raise AssertionError(f"alice-{n} was never acknowledged")
            mine.append(sent.seq)
        output, _ = await asyncio.wait_for(other.communicate(), timeout=60)
        assert other.returncode == 0
        theirs = json.loads(output)
        total = MINE + THEIRS
        assert sorted(mine + theirs) == list(range(1, total + 1))  # one order, no gaps
        # This node began sending once the other was sending (see above), so the
        # two raced for the same seqs. Correctness holds whoever wins; liveness
        # does not favour either node (see docs/architecture.md on routing).
        for _ in range(1000):  # every event of either node reaches this node's subscriber
            if len(seen) >= total:
                break
            await asyncio.sleep(0.01)
        assert sorted(seq for _, seq in seen) == list(range(1, total + 1))
        stored: list[Any] = []
        while len(stored) < total:
            page = await stack.messaging.history(
                "alice", group.id, after_seq=len(stored), limit=200
            )
            assert page, "history ended early"
            stored += page
        assert sorted(m.content for m in stored) == sorted(
            [f"alice-{n}" for n in range(MINE)] + [f"bob-{n}" for n in range(THEIRS)]
        )
    finally:
        if other is not None and other.returncode is None:
            other.kill()
            await other.wait()
        stack.supervisor.stop(block=False)
        await stack.supervisor.wait_exit()
        await broker.close()
        await store.close()
