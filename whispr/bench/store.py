"""Store benchmark: messages persisted through conversation actors into PostgreSQL.

``group_commit_msgs_per_s``      sends through the actors with group commit (batches of up to
                                 1000, two in flight, as a node runs it)
``group_commit_1_sender_msgs_per_s``  the same with one sender per conversation
``single_insert_msgs_per_s``     the same load with one insert per message (batches of one)
``conversation_actor_bytes``     resident memory of an active conversation actor with 100
                                 cached messages
``search_p95_ms``, ``index_overhead_pct``, ``export_msgs_per_s``  search, indexing and
                                 export: see ``whispr/bench/search.py``
``catch_up_1000_pages_ms``       1,000 catch-up pages (the last 10 messages of a conversation,
                                 for one of its members) asked for at once, as 1,000 clients
                                 reconnecting do: the time until the last is read, and
                                 ``catch_up_1000_pages_cpu_ms`` this process's CPU for them
``schedule_dispatch_p99_ms``     scheduled messages' lateness under the group-commit load, and
                                 the scheduler's idle cost with 100,000 pending
                                 (``whispr/bench/schedules.py``)

Load shape. 200 group conversations with 5 members sending at once (1,000
clients), each client sending its next message once the last one is
acknowledged, i.e. durable (a client never has more than one send
unanswered). Every message goes through ``Messaging.send``, the
conversation's actor and a group commit, and the run checks at the end that
the store holds exactly the messages acknowledged. Until November 2026 the
bench had one sender per conversation (200 clients in all): with at most 200
sends in flight on a whole node, batches stayed small and the figure said
more about the round-trip latency of 200 clients than about what a node
persists; a node serving thousands of connections, several of them in the
same busy group, is the load group commit exists for. The one-sender figure
is still reported (``group_commit_1_sender_msgs_per_s``) for comparison with
earlier runs.

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

from actors.conversation import ConversationDeps, Draft
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from supervisors import ChildSpec, DynamicSupervisor, Ref, Registry
from supervisors.batching import Batcher
from whispr.bench import schedules as schedules_bench
from whispr.bench.report import machine, markdown_table, write_json, write_text
from whispr.bench.search import measure_search
from whispr.broker import MemoryBroker
from whispr.store.postgres import PostgresStore

__all__ = ["run_suite"]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONVERSATIONS = 200
SENDERS = 5  # per conversation; see "Load shape" above


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


async def throughput(
    store: PostgresStore,
    *,
    max_batch: int,
    conversations: int,
    senders: int,
    per_sender: int,
) -> tuple[float, list[str]]:
    """Messages per second acknowledged, and the conversations they went to."""
    messaging, supervisor = await _stack(store, max_batch)
    members = [f"u{n}" for n in range(1, senders + 1)]
    groups = [
        (await messaging.create_group("u0", f"bench {n}", members)).id for n in range(conversations)
    ]
    for conversation_id in groups:  # warm the actors
        await messaging.send("u0", conversation_id, Draft(client_id="warm", content="warm"))

    async def sender(conversation_id: str, user_id: str) -> None:
        # A client: the next message once the last one is acknowledged (durable).
        for n in range(per_sender):
            await messaging.send(
                user_id, conversation_id, Draft(client_id=f"m{n}", content="x" * 60)
            )

    began = time.perf_counter()
    await asyncio.gather(*(sender(c, u) for c in groups for u in members))
    elapsed = time.perf_counter() - began
    stored = sum([await store.last_seq(c) for c in groups])
    supervisor.stop(block=False)
    await supervisor.wait_exit()
    sent = conversations * senders * per_sender
    if stored != sent + conversations:  # every acknowledged message is there, once
        msg = f"{stored - conversations} messages stored for {sent} acknowledged"
        raise AssertionError(msg)
    return sent / elapsed, groups


async def _catch_up(store: PostgresStore, groups: list[str], readers: int) -> tuple[float, float]:
    """Milliseconds, wall and CPU, to read ``readers`` catch-up pages asked for at once (the
    median of three rounds)."""
    last = {c: await store.last_seq(c) for c in groups}
    asks = [(groups[n % len(groups)], f"u{1 + n % SENDERS}") for n in range(readers)]
    rounds = []
    for _ in range(3):
        cpu, began = time.process_time(), time.perf_counter()
        pages = await asyncio.gather(
            *(store.page_messages(c, after_seq=last[c] - 10, viewer_id=u) for c, u in asks)
        )
        rounds.append(((time.perf_counter() - began) * 1e3, (time.process_time() - cpu) * 1e3))
        if any(len(page) != 10 for page in pages):
            raise AssertionError("a catch-up page did not hold the last 10 messages")
    rounds.sort()
    return rounds[1]


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


async def _measure(url: str, quick: bool, search_messages: int) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(url, server_settings={"search_path": schema}, max_size=10)
    try:
        await store.open()
        await store.migrate()
        messages = 4_000 if quick else 20_000
        shape = {"conversations": CONVERSATIONS, "senders": SENDERS}
        per_sender = messages // (CONVERSATIONS * SENDERS)
        print("[store] group commit...", flush=True)
        grouped, groups = await throughput(store, max_batch=1000, per_sender=per_sender, **shape)
        print(f"[store] group commit: {grouped:,.0f} msgs/s; one sender each...", flush=True)
        one_sender, _ = await throughput(
            store,
            max_batch=1000,
            conversations=CONVERSATIONS,
            senders=1,
            per_sender=messages // CONVERSATIONS,
        )
        print(
            f"[store] one sender: {one_sender:,.0f} msgs/s; one insert per message...", flush=True
        )
        single, _ = await throughput(store, max_batch=1, per_sender=per_sender, **shape)
        print(f"[store] single inserts: {single:,.0f} msgs/s; catch-up pages...", flush=True)
        catch_up_ms, catch_up_cpu_ms = await _catch_up(store, groups, 1000)
        print(f"[store] 1,000 catch-up pages: {catch_up_ms:,.0f} ms; actor memory...", flush=True)
        actor_bytes = await _actor_bytes(store, 200 if quick else 1000)
        print("[store] scheduled messages under the group-commit load...", flush=True)
        scheduled = await schedules_bench.measure(
            store,
            lambda: throughput(store, max_batch=1000, per_sender=per_sender, **shape),
            quick,
        )
        search = await measure_search(url, search_messages, per_sender)
        return {
            **search,
            **scheduled,
            "group_commit_msgs_per_s": grouped,
            "group_commit_1_sender_msgs_per_s": one_sender,
            "single_insert_msgs_per_s": single,
            "conversation_actor_bytes": actor_bytes,
            "catch_up_1000_pages_ms": catch_up_ms,
            "catch_up_1000_pages_cpu_ms": catch_up_cpu_ms,
            "conversations": CONVERSATIONS,
            "senders_per_conversation": SENDERS,
            "messages": messages,
        }
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """Measure and write store.json and store.md."""
    import uvloop

    url = os.environ.get("WHISPR_BENCH_DATABASE_URL", DEFAULT_URL)
    search_messages = int(
        os.environ.get("WHISPR_BENCH_SEARCH_MESSAGES", 20_000 if quick else 1_000_000)
    )
    figures = uvloop.run(_measure(url, quick, search_messages))
    report = {
        **figures,
        "machine": machine(),
        "targets": {
            "group_commit_msgs_per_s": ">= 20000",
            "conversation_actor_bytes": "< 100000",
            "search_p95_ms": "< 50",
            "index_overhead_pct": "< 15",
            "schedule_dispatch_p99_ms": "<= 1000",
        },
    }
    write_json(out / "store.json", report)
    rows = [
        [
            "group_commit_msgs_per_s",
            figures["group_commit_msgs_per_s"],
            ">= 20,000",
            figures["group_commit_msgs_per_s"] >= 20_000,
        ],
        [
            "group_commit_1_sender_msgs_per_s",
            figures["group_commit_1_sender_msgs_per_s"],
            "",
            None,
        ],
        ["single_insert_msgs_per_s", figures["single_insert_msgs_per_s"], "", None],
        ["catch_up_1000_pages_ms", figures["catch_up_1000_pages_ms"], "", None],
        ["catch_up_1000_pages_cpu_ms", figures["catch_up_1000_pages_cpu_ms"], "", None],
        *schedules_bench.rows(figures),
        [
            "conversation_actor_bytes",
            figures["conversation_actor_bytes"],
            "< 100,000",
            figures["conversation_actor_bytes"] < 100_000,
        ],
        ["search_p95_ms", figures["search_p95_ms"], "< 50", figures["search_p95_ms"] < 50],
        ["search_p50_ms", figures["search_p50_ms"], "", None],
        [
            "index_overhead_pct",
            figures["index_overhead_pct"],
            "< 15",
            figures["index_overhead_pct"] < 15,
        ],
        ["index_overhead_batch_write_pct", figures["index_overhead_batch_write_pct"], "", None],
        ["export_msgs_per_s", figures["export_msgs_per_s"], "", None],
    ]
    text = (
        "# Store: sends through conversation actors into PostgreSQL\n\n"
        f"{figures['conversations']} conversations with "
        f"{figures['senders_per_conversation']} members sending concurrently (one sender "
        "each for the `1_sender` line), each client's next message once the last is "
        f"acknowledged (durable); {figures['messages']:,} messages per run.\n\n"
        + markdown_table(["figure", "value", "target", "met"], rows)
        + f"\nSearch: {figures['search_messages']:,} messages, a user in "
        f"{figures['search_user_conversations']} conversations, {figures['search_queries']} "
        f"queries (loaded in {figures['search_load_s']:,.0f} s).\n"
        + "\nReproduce: `make bench BENCH_ARGS=store`.\n"
    )
    write_text(out / "store.md", text)
    print(text, flush=True)
    return report
