"""Scheduled messages in the store benchmark: dispatch lateness under load, and idle cost.

``schedule_dispatch_p99_ms``   how late scheduled messages are sent (the time their send is
                               acknowledged, durable, minus their ``send_at``), 99th
                               percentile, while the store suite's group-commit load runs;
                               ``_p50_ms`` and ``_max_ms`` beside it
``scheduler_idle_cpu_pct``     this process's CPU, in percent of one core, while a scheduler
                               waits with 100,000 schedules pending (none due), and
                               ``scheduler_idle_reads`` the store reads it made meanwhile

Runs in the store suite (``whispr/bench/store.py``) on its PostgreSQL schema, through the
node's own pieces: ``Messaging``, ``Schedules`` and the ``Scheduler`` with its one timer.

``python -m whispr.bench.schedules`` measures a whole idle node instead: a ``whispr serve``
process on PostgreSQL, its CPU over a minute with no schedule pending, then with 100,000
(none due), each on a fresh schema.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psutil

from actors.conversation import ConversationDeps
from actors.messaging import Messaging
from actors.model import Draft, InsertResult, Message
from actors.schedules import Schedules
from actors.scheduling import Schedule
from supervisors import ChildSpec, DynamicSupervisor, Ref, Registry
from supervisors.batching import Batcher
from whispr.bench.nodes import start_node_process
from whispr.broker import MemoryBroker
from whispr.scheduler import Scheduler
from whispr.store.postgres import PostgresStore

__all__ = ["measure", "rows"]

#: Scheduled messages sent during the load, and the conversations they go to.
SCHEDULED = 2_000
SCHEDULED_CONVERSATIONS = 20
#: Pending schedules while the idle cost is measured, and for how long.
PENDING = 100_000
IDLE_S = 20.0


async def measure(
    store: PostgresStore, load: Callable[[], Awaitable[Any]], quick: bool
) -> dict[str, float]:
    """The figures above: ``load`` is the suite's group-commit load, run meanwhile."""
    lateness = await _lateness(store, load, SCHEDULED // 4 if quick else SCHEDULED)
    pending, idle_s = (PENDING // 10, IDLE_S / 4) if quick else (PENDING, IDLE_S)
    idle_cpu, reads = await _idle(store, pending, idle_s)
    ordered = sorted(lateness)
    return {
        "schedule_dispatch_p50_ms": statistics.median(ordered) * 1e3,
        "schedule_dispatch_p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1e3,
        "schedule_dispatch_max_ms": ordered[-1] * 1e3,
        "scheduled_messages": len(ordered),
        "scheduler_idle_cpu_pct": idle_cpu,
        "scheduler_idle_reads": reads,
        "scheduler_idle_pending": pending,
        "scheduler_idle_s": idle_s,
    }


def rows(figures: dict[str, Any]) -> list[list[Any]]:
    """The suite's report rows for these figures."""
    return [
        [
            "schedule_dispatch_p99_ms",
            figures["schedule_dispatch_p99_ms"],
            "<= 1,000",
            figures["schedule_dispatch_p99_ms"] <= 1000,
        ],
        ["schedule_dispatch_p50_ms", figures["schedule_dispatch_p50_ms"], "", None],
        [
            f"scheduler_idle_cpu_pct ({figures['scheduler_idle_pending']:,} pending)",
            figures["scheduler_idle_cpu_pct"],
            "",
            None,
        ],
        ["scheduler_idle_reads", figures["scheduler_idle_reads"], "", None],
    ]


async def _stack(store: PostgresStore) -> tuple[Schedules, Scheduler, Ref[Any]]:
    supervisor = DynamicSupervisor.start(max_restarts=1000, max_seconds=1.0)
    await supervisor.started()
    broker = MemoryBroker()
    deps = ConversationDeps(
        store=store,
        broker=broker,
        commit=Batcher[Message, InsertResult](
            store.insert_messages, max_batch=1000, max_in_flight=1
        ),
    )

    async def start_child(spec: ChildSpec) -> Ref[Any]:
        ref: Ref[Any] = await supervisor.proxy().start_child(spec)
        return ref

    messaging = Messaging(deps, registry=Registry(), start_child=start_child)
    schedules = Schedules(messaging, store)
    return schedules, Scheduler(schedules, store, broker), supervisor


async def _lateness(
    store: PostgresStore, load: Callable[[], Awaitable[Any]], count: int
) -> list[float]:
    """Seconds each of ``count`` schedules, due over a few seconds, was sent late."""
    schedules, scheduler, supervisor = await _stack(store)
    messaging = schedules.messaging
    authors = [f"s{n}" for n in range(count // 100 + 1)]
    groups = [
        (await messaging.create_group("s0", f"sched {n}", authors)).id
        for n in range(SCHEDULED_CONVERSATIONS)
    ]
    late: list[float] = []
    done = asyncio.Event()

    def sent(_schedule: Schedule, lateness: float) -> None:
        late.append(lateness)
        if len(late) == count:
            done.set()

    scheduler.on_sent = sent
    await scheduler.start()
    start = time.time() + 3.0  # scheduling goes first: each author's, side by side

    async def author(index: int, name: str) -> None:
        for n in range(index * 100, min(count, (index + 1) * 100)):  # 100 each at most
            await schedules.schedule(
                name,
                groups[n % len(groups)],
                Draft(client_id=f"b{n}", content="scheduled " + "x" * 50),
                start + 3.0 * n / count,  # spread over 3 s
            )

    await asyncio.gather(*(author(i, name) for i, name in enumerate(authors)))
    if time.time() > start - 0.5:
        raise RuntimeError("scheduling took longer than the margin before the first send_at")
    await asyncio.sleep(start - 0.5 - time.time())

    async def keep_loading() -> None:  # the load runs through the whole dispatch window
        while not done.is_set():
            await load()

    running = asyncio.ensure_future(keep_loading())
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
    finally:
        await running
        await scheduler.close()
        supervisor.stop(block=False)
        await supervisor.wait_exit()
    return late


async def _idle(store: PostgresStore, pending: int, seconds: float) -> tuple[float, int]:
    """CPU percent of one core and store reads of a scheduler waiting with ``pending``
    schedules due in a day."""
    schedules, scheduler, supervisor = await _stack(store)
    group = (await schedules.messaging.create_group("idle", "idle", [])).id
    async with store._connection() as c:  # bulk: 100,000 rows in one statement
        await c.execute(_IDLE_SCHEDULES, time.time() + 86_400, group, pending)
    reads = 0
    next_due = store.next_due

    async def counted() -> float | None:
        nonlocal reads
        reads += 1
        return await next_due()

    scheduler.store = _Counting(store, counted)  # type: ignore[assignment]
    await scheduler.start()
    await asyncio.sleep(1.0)  # its first look at the queues
    reads_before = reads
    cpu, began = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    used = (time.process_time() - cpu) / (time.perf_counter() - began) * 100
    await scheduler.close()
    supervisor.stop(block=False)
    await supervisor.wait_exit()
    async with store._connection() as c:
        await c.execute("DELETE FROM scheduled_messages WHERE sender_id = 'idle'")
    return used, reads - reads_before


class _Counting:
    """The store with ``next_due`` counted (the scheduler's only read while idle)."""

    def __init__(self, store: PostgresStore, next_due: Callable[[], Awaitable[float | None]]):
        self._store = store
        self.next_due = next_due

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


#: The bulk insert of idle schedules, due in a day (``$1``), ``$3`` of them in conversation ``$2``.
_IDLE_SCHEDULES = (
    "INSERT INTO scheduled_messages (id, conversation_id, sender_id, client_id, draft, "
    "send_at, created_at, due_at) SELECT 'idle-' || n, $2, 'idle', 'c' || n, "
    '\'{"client_id":"c","content":"x"}\', $1 + n, $1, $1 + n '
    "FROM generate_series(1, $3) AS n"
)


async def node_idle_cpu(url: str, pending: int, seconds: float = 60.0) -> float:
    """Percent of one core a ``whispr serve`` node uses, idle, with ``pending`` schedules."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        node_url = f"{url}{'&' if '?' in url else '?'}search_path={schema}"
        node = await start_node_process(f"idle-{pending}", {"WHISPR_DATABASE_URL": node_url})
        try:
            await admin.execute(f'SET search_path TO "{schema}"')
            await admin.execute(
                "INSERT INTO conversations (id, kind, created_by, created_at) "
                "VALUES ('idle', 'group', 'idle', 0)"
            )
            await admin.execute(_IDLE_SCHEDULES, time.time() + 86_400, "idle", pending)
            await asyncio.sleep(5.0)  # settled
            process = psutil.Process(node.process.pid)
            before, began = process.cpu_times(), time.monotonic()
            await asyncio.sleep(seconds)
            after, ended = process.cpu_times(), time.monotonic()
        finally:
            await node.stop()
        used = (after.user + after.system) - (before.user + before.system)
        return used / (ended - began) * 100
    finally:
        await admin.execute("SET search_path TO DEFAULT")
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def _node_figures() -> None:
    url = os.environ.get("WHISPR_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    for pending in (0, PENDING):
        used = await node_idle_cpu(url, pending)
        print(f"idle node, {pending:,} schedules pending: {used:.3f}% of one core", flush=True)


if __name__ == "__main__":
    asyncio.run(_node_figures())
