"""Store benchmark: messages persisted through conversation actors into PostgreSQL.

``group_commit_msgs_per_s``   sends through the actors with group commit (batches of up to 1000)
``single_insert_msgs_per_s``  the same with one insert per message (batches of one)
``conversation_actor_bytes``  resident memory of an active conversation actor with 100 cached
                              messages

Runs against ``WHISPR_BENCH_DATABASE_URL`` (default: the local test database),
in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from actors.batching import Batcher
from actors.conversation import ConversationDeps, Draft
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from supervisors import ChildSpec, DynamicSupervisor, Ref, Registry
from whispr.bench.report import machine, markdown_table, write_json, write_text
from whispr.broker import MemoryBroker
from whispr.store.postgres import PostgresStore

__all__ = ["run_suite"]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def _stack(store: PostgresStore, max_batch: int) -> tuple[Messaging, Ref[Any]]:
    supervisor = DynamicSupervisor.start(max_restarts=1000, max_seconds=1.0)
    await supervisor.started()
    deps = ConversationDeps(
        store=store,
        broker=MemoryBroker(),
        commit=Batcher[Message, InsertResult](
            store.insert_messages,
            max_batch=max_batch,
            # Group commit as a node runs it (two batches in flight, the next one
            # gathering meanwhile); the baseline uses the whole pool instead.
            max_in_flight=2 if max_batch > 1 else store.max_size,
        ),
    )

    async def start_child(spec: ChildSpec) -> Ref[Any]:
        ref: Ref[Any] = await supervisor.proxy().start_child(spec)
        return ref

    return Messaging(deps, registry=Registry(), start_child=start_child), supervisor


async def _throughput(
    store: PostgresStore, *, max_batch: int, conversations: int, per_conversation: int
) -> float:
    messaging, supervisor = await _stack(store, max_batch)
    groups = [
        (await messaging.create_group("u0", f"bench {n}", ["u1"])).id for n in range(conversations)
    ]
    for conversation_id in groups:  # warm the actors
        await messaging.send("u0", conversation_id, Draft(client_id="warm", content="warm"))

    async def sender(conversation_id: str) -> None:
        for n in range(per_conversation):
            await messaging.send("u1", conversation_id, Draft(client_id=f"m{n}", content="x" * 60))

    began = time.perf_counter()
    await asyncio.gather(*(sender(c) for c in groups))
    elapsed = time.perf_counter() - began
    supervisor.stop(block=False)
    await supervisor.wait_exit()
    return conversations * per_conversation / elapsed


async def _actor_bytes(store: PostgresStore, actors: int) -> float:
    messaging, supervisor = await _stack(store, 1000)
    groups = [(await messaging.create_group("u0", None, ["u1"])).id for _ in range(actors)]
    batch = [
        Message(
            conversation_id=c,
            seq=s,
            id=uuid.uuid4().hex,
            client_id=f"c{s}",
            sender_id="u1",
            kind="text",
            content="a typical short chat message, ~60 bytes",
            created_at=time.time(),
        )
        for c in groups
        for s in range(1, 101)
    ]
    for start in range(0, len(batch), 5000):
        await store.insert_messages(batch[start : start + 5000])
    gc.collect()
    before = psutil.Process().memory_info().rss
    for conversation_id in groups:  # starts each actor, which caches its last 100 messages
        await messaging.members("u0", conversation_id)
    gc.collect()
    after = psutil.Process().memory_info().rss
    supervisor.stop(block=False)
    await supervisor.wait_exit()
    return (after - before) / actors


async def _measure(url: str, quick: bool) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(url, server_settings={"search_path": schema}, max_size=10)
    try:
        await store.open()
        await store.migrate()
        size = {"conversations": 200, "per_conversation": 20 if quick else 100}
        print("[store] group commit...", flush=True)
        grouped = await _throughput(store, max_batch=1000, **size)
        print(f"[store] group commit: {grouped:,.0f} msgs/s; one insert per message...", flush=True)
        single = await _throughput(store, max_batch=1, **size)
        print(f"[store] single inserts: {single:,.0f} msgs/s; actor memory...", flush=True)
        actor_bytes = await _actor_bytes(store, 200 if quick else 1000)
        return {
            "group_commit_msgs_per_s": grouped,
            "single_insert_msgs_per_s": single,
            "conversation_actor_bytes": actor_bytes,
            "conversations": size["conversations"],
            "messages": size["conversations"] * size["per_conversation"],
        }
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """Measure and write store.json and store.md."""
    import uvloop

    url = os.environ.get("WHISPR_BENCH_DATABASE_URL", DEFAULT_URL)
    figures = uvloop.run(_measure(url, quick))
    report = {
        **figures,
        "machine": machine(),
        "targets": {"group_commit_msgs_per_s": ">= 20000", "conversation_actor_bytes": "< 100000"},
    }
    write_json(out / "store.json", report)
    rows = [
        [
            "group_commit_msgs_per_s",
            figures["group_commit_msgs_per_s"],
            ">= 20,000",
            figures["group_commit_msgs_per_s"] >= 20_000,
        ],
        ["single_insert_msgs_per_s", figures["single_insert_msgs_per_s"], "", None],
        [
            "conversation_actor_bytes",
            figures["conversation_actor_bytes"],
            "< 100,000",
            figures["conversation_actor_bytes"] < 100_000,
        ],
    ]
    text = (
        "# Store: sends through conversation actors into PostgreSQL\n\n"
        f"{figures['conversations']} conversations sending concurrently, "
        f"{figures['messages']:,} messages per run, acknowledged once durable.\n\n"
        + markdown_table(["figure", "value", "target", "met"], rows)
        + "\nReproduce: `make bench BENCH_ARGS=store`.\n"
    )
    write_text(out / "store.md", text)
    print(text, flush=True)
    return report
