"""Gateway load generator: real WebSocket clients against real nodes (``whispr bench``).

The clients run in this process; the nodes run in their own processes (``whispr serve``),
started here unless ``--url`` points at running ones. Each client is one connection of one
user; users are grouped into conversations of ``--conversation-size`` members. Phases:

1. connect and join every client (``connections_held``; server memory per connection);
2. send ``--rate`` messages per second in total for ``--duration`` seconds, each message
   stamped with its send time, and time its arrival at *every* recipient
   (``latency_p50/p95/p99_ms``; ``msgs_per_s`` counts messages acknowledged, i.e. durable),
   and the CPU the nodes spent meanwhile per message acknowledged (``server_cpu_us_per_msg``,
   all node processes together), the figure that says what a node costs per message
   whatever the load asked, and the generator's own (``generator_cpu_us_per_msg``): on a
   shared machine the two compete for the same cores. So do PostgreSQL and Redis when they
   run here (``store_cpu_us_per_msg``, ``broker_cpu_us_per_msg``: their local processes);
   ``machine_cpu_us_per_msg`` is all the machine's busy CPU per message, and
   ``machine_busy_fraction`` how much of its cores were busy, and ``other_cpu_us_per_msg``
   what none of those processes spent (another tenant of the machine, say: a run with much
   of it measured a busier machine, not the code). ``machine_cpu_us_per_msg``
   times a rate is the cores that rate needs, whatever the layout of the nodes: at
   10,000 msgs/s, 200 µs per message is both cores of a two-core machine;
3. disconnect up to 1,000 clients at once, send to their conversations while they are away,
   reconnect them all at once with ``last_seq``, and time until each has caught up
   (``reconnect_catchup_p95_ms``).

With ``--ceiling`` the same scenario then runs again against the bare relay
(:mod:`whispr.bench.relay`), right after, and its figures go in the report under
``ceiling``. This machine's speed varies from one hour to the next far more than one change
moves the figures, so a target is judged against what the relay did at the same moment: a
target the relay misses too was out of reach of that machine then, whatever the service did.

Writes ``gateway.json``, ``gateway.md`` and ``gateway.png`` (latency distribution).

Nodes use PostgreSQL and Redis when ``WHISPR_BENCH_DATABASE_URL`` / ``WHISPR_BENCH_REDIS_URL``
are set or the local defaults answer, and the embedded store otherwise (then only one node).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psutil
from tqdm import tqdm

from whispr.auth import issue_token
from whispr.bench.nodes import NodeProcess, start_node_process, start_relay_process
from whispr.bench.report import (
    machine,
    markdown_table,
    percentile,
    plot_cdf,
    write_json,
    write_text,
)
from whispr.bench.wsclient import BenchClient
from whispr.client import PhoenixClient, ServerEvent
from whispr.config import DEV_JWT_SECRET

__all__ = ["Scenario", "main", "run_suite"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Messages per second the target asks for (docs/design.md, section 9).
TARGET_RATE = 10_000
TARGETS = {
    "connections_held": ">= 10,000 on one node",
    "server_rss_bytes_per_connection": "<= 40,960",
    "msgs_per_s": f">= {TARGET_RATE:,}",
    "latency_p95_ms": "< 50",
    "reconnect_catchup_p95_ms": "< 1,000 (1,000 clients at once)",
}
#: The figures of the relay's run that a report with ``--ceiling`` keeps, beside the nodes'.
CEILING_FIGURES = (
    "msgs_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "server_cpu_us_per_msg",
    "generator_cpu_us_per_msg",
    "machine_cpu_us_per_msg",
    "machine_busy_fraction",
    "reconnect_catchup_p95_ms",
)


@dataclass(frozen=True)
class Scenario:
    """One load run's shape."""

    connections: int = 1_000
    conversation_size: int = 10
    rate: float = 1_000.0
    duration: float = 20.0
    nodes: int = 1
    reconnecting: int = 1_000
    urls: tuple[str, ...] = ()
    #: Against the bare relay (:mod:`whispr.bench.relay`) instead of nodes: the ceiling.
    relay: bool = False
    #: With several nodes, where members connect: "spread" puts a conversation's members on
    #: different nodes in turn (what a load balancer does), "conversation" puts all of a
    #: conversation's members on one node (the best case: no event crosses nodes).
    placement: str = "spread"
    #: Then run the same scenario against the bare relay too: the ceiling at that moment.
    ceiling: bool = False

    def __post_init__(self) -> None:
        if self.ceiling and self.relay:
            msg = "--ceiling measures nodes and then the relay: leave out --relay"
            raise ValueError(msg)


PLACEMENTS = ("spread", "conversation")


def node_for(member: int, conversation: int, nodes: int, placement: str) -> int:
    """The node (index) the ``member``-th member of the ``conversation``-th group connects to."""
    return (conversation if placement == "conversation" else member) % nodes


# -- nodes ------------------------------------------------------------------------------


def _services_env() -> dict[str, str]:
    """PostgreSQL and Redis for the nodes when reachable; empty (embedded) otherwise."""
    import asyncpg
    import redis

    database = os.environ.get("WHISPR_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("WHISPR_BENCH_REDIS_URL", DEFAULT_REDIS_URL)

    async def pg_ok() -> bool:
        try:
            connection = await asyncpg.connect(database, timeout=3)
        except Exception:
            return False
        await connection.close()
        return True

    try:
        redis.Redis.from_url(redis_url, socket_timeout=3).ping()
        redis_ok = True
    except Exception:
        redis_ok = False
    if asyncio.run(pg_ok()) and redis_ok:
        return {"WHISPR_DATABASE_URL": database, "WHISPR_REDIS_URL": redis_url}
    return {}


@dataclass
class _Nodes:
    running: list[NodeProcess] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def rss(self) -> int:
        """Resident memory of the node processes, together."""
        return int(self._total(lambda process: process.memory_info().rss))

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the node processes have used so far, together."""
        return self._total(_cpu_seconds)

    def _total(self, measure: Callable[[psutil.Process], float]) -> float:
        """``measure`` summed over the node processes still there."""
        return _summed(lambda node: measure(psutil.Process(node.process.pid)), self.running)


_T = TypeVar("_T")

#: Process names of the services a node uses, as ``psutil`` reports them.
_SERVICE_PROCESSES = {"WHISPR_DATABASE_URL": "postgres", "WHISPR_REDIS_URL": "redis-server"}
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
#: CPU time spent on this machine's work. Not idle or I/O wait; not steal (a hypervisor
#: running someone else on this machine's cores) nor guest (already counted in user).
_BUSY_KINDS = ("user", "nice", "system", "irq", "softirq")


@dataclass
class _CpuMeter:
    """CPU per message of the nodes, the generator, the local services and the machine."""

    nodes: _Nodes
    env: dict[str, str]
    _began: dict[str, float] = field(default_factory=dict)
    _services_began: dict[str, dict[tuple[int, float], float]] = field(default_factory=dict)

    def start(self) -> None:
        self._began = self._read()
        self._services_began = self._read_services()

    def per_message(self, acked: int) -> dict[str, float | None]:
        """µs per message acknowledged since :meth:`start`, and the machine's busy share."""
        now = self._read()
        spent = {name: now[name] - self._began[name] for name in now if name in self._began}
        for variable, processes in self._read_services().items():
            spent[variable] = _spent_since(self._services_began.get(variable, {}), processes)

        def per(name: str) -> float | None:
            return spent[name] / acked * 1e6 if acked and name in spent else None

        figures = {
            "server_cpu_us_per_msg": per("nodes"),
            "generator_cpu_us_per_msg": per("generator"),
            "store_cpu_us_per_msg": per("WHISPR_DATABASE_URL"),
            "broker_cpu_us_per_msg": per("WHISPR_REDIS_URL"),
            "machine_cpu_us_per_msg": per("busy"),
            "machine_busy_fraction": (
                spent["busy"] / (spent["wall"] * (psutil.cpu_count() or 1))
                if spent["wall"]
                else None
            ),
        }
        figures["other_cpu_us_per_msg"] = _other_cpu(figures)
        return figures

    def _read(self) -> dict[str, float]:
        times = psutil.cpu_times()._asdict()
        readings = {
            "wall": time.monotonic(),
            "busy": sum(times.get(kind, 0.0) for kind in _BUSY_KINDS),
            "generator": time.process_time(),
        }
        if self.nodes.running:
            readings["nodes"] = self.nodes.cpu_seconds()
        return readings

    def _read_services(self) -> dict[str, dict[tuple[int, float], float]]:
        """Each local service's processes (pid and start time) and the CPU each has used.

        Per process, because a service's processes come and go during a run (PostgreSQL
        starts a backend per connection): a sum over whichever exist at each reading would
        lose an exited process's CPU and could come out negative.
        """
        readings: dict[str, dict[tuple[int, float], float]] = {}
        for variable, name in _SERVICE_PROCESSES.items():
            url = self.env.get(variable)
            if url and urlsplit(url).hostname in _LOOPBACK:
                found: dict[tuple[int, float], float] = {}
                for process in psutil.process_iter(["name", "create_time"]):
                    if process.info["name"] != name:
                        continue
                    with contextlib.suppress(psutil.Error):
                        found[(process.pid, process.info["create_time"])] = _cpu_seconds(process)
                readings[variable] = found
        return readings


def _spent_since(
    began: dict[tuple[int, float], float], now: dict[tuple[int, float], float]
) -> float:
    """CPU the processes in ``now`` used since ``began`` (all of it for those started since).

    A process that exited in between is left out: what it used is not known any more, and
    leaving it out can only undercount, never make the figure negative.
    """
    return sum(seconds - began.get(key, 0.0) for key, seconds in now.items())


def _other_cpu(figures: dict[str, float | None]) -> float | None:
    """The machine's CPU per message that none of the measured processes spent.

    Something else running on the machine during the run (another tenant, a service reached
    by an address that is not loopback): a run with a large share of it measured a busier
    machine, not the code.
    """
    machine = figures["machine_cpu_us_per_msg"]
    nodes, generator = figures["server_cpu_us_per_msg"], figures["generator_cpu_us_per_msg"]
    if machine is None or nodes is None or generator is None:
        return None
    services = (figures["store_cpu_us_per_msg"] or 0.0) + (figures["broker_cpu_us_per_msg"] or 0.0)
    return float(max(0.0, machine - nodes - generator - services))


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time (user and system) ``process`` has used so far."""
    return float(sum(process.cpu_times()[:2]))


def _summed(measure: Callable[[_T], float], items: Iterable[_T]) -> float:
    """``measure`` summed over ``items``, leaving out those whose process is gone."""
    total = 0.0
    for item in items:
        with contextlib.suppress(psutil.Error):
            total += measure(item)
    return total


@contextlib.asynccontextmanager
async def _start_nodes(count: int, env: dict[str, str], workdir: Path) -> AsyncIterator[_Nodes]:
    nodes = _Nodes()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    node_env = {
        **env,
        "WHISPR_SQLITE_PATH": str(workdir / "bench.db"),
        "WHISPR_REDIS_PREFIX": prefix,
        "WHISPR_MAX_CONNECTIONS_PER_IP": "1000000",
        "WHISPR_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    try:
        for n in range(count):
            node = await start_node_process(f"bench-{n}", node_env)
            nodes.running.append(node)
            nodes.urls.append(node.url)
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes.running))


@contextlib.asynccontextmanager
async def _start_relay() -> AsyncIterator[_Nodes]:
    relay = await start_relay_process()
    try:
        yield _Nodes(running=[relay], urls=[relay.url])
    finally:
        await relay.stop(timeout=5)


# -- clients ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Client:
    user: str
    topic: str
    url: str
    latencies: list[float]
    client: BenchClient | None = None
    last_seq: int = 0
    seen: int = 0
    token: str | None = None
    #: Set once ``last_seq`` reaches ``wanted`` (reconnect phase).
    wanted: int = 0
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: ServerEvent) -> None:
        if event.event != "new_message":
            return
        message = event.payload["message"]
        self.last_seq = max(self.last_seq, message["seq"])
        self.seen += 1
        if self.last_seq >= self.wanted:
            self.caught_up.set()
        sent_at = message.get("metadata", {}).get("t")
        if sent_at is not None:
            self.latencies.append(time.time() - sent_at)

    async def connect(self, params: dict[str, Any] | None = None) -> None:
        # A client keeps its token across reconnects, as real ones do; and the generator's
        # own costs (signing a token, looking up proxy settings: a third of its time per
        # connect) would be counted in the reconnect figure.
        if self.token is None:
            self.token = issue_token(
                self.user, secret=DEV_JWT_SECRET, device_id="bench", ttl_s=86_400
            )
        self.client = await BenchClient.connect(self.url, self.token, self.on_event)
        await self.client.join(self.topic, params or {})

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


async def _bounded(coroutines: Sequence[Any], limit: int, bar: tqdm[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coroutine: Any) -> Any:
        async with gate:
            try:
                return await coroutine
            finally:
                bar.update(1)

    return await asyncio.gather(*(one(c) for c in coroutines), return_exceptions=True)


async def _create_conversations(url: str, owners: list[list[str]]) -> list[str]:
    ids = []
    for group in tqdm(owners, desc="conversations", unit="conv", file=sys.stderr):
        owner, members = group[0], group[1:]
        token = issue_token(owner, secret=DEV_JWT_SECRET, ttl_s=86_400)
        async with PhoenixClient.connect(url, token) as client:
            await client.join(f"user:{owner}")
            created = await client.push(
                f"user:{owner}",
                "create_conversation",
                {"kind": "group", "title": "bench", "members": members},
            )
            ids.append(created["conversation"]["id"])
    return ids


async def _send_at_rate(
    senders: list[_Client], rate: float, duration: float, label: str
) -> tuple[int, int, float]:
    """Send ``rate`` msgs/s for ``duration`` s round robin; (acknowledged, failed, elapsed).

    What is due is computed from the time elapsed, not counted per tick: a tick that runs
    late (the generator shares the machine with what it measures) sends more, so the rate
    asked is the rate sent.
    """
    acked = failed = 0
    pending: set[asyncio.Future[Any]] = set()
    tick = 0.005
    count = 0
    total = int(rate * duration)
    began = last_answer = time.monotonic()
    bar = tqdm(total=total, desc=label, unit="msg", file=sys.stderr)

    def done(future: asyncio.Future[Any]) -> None:
        nonlocal acked, failed, last_answer
        last_answer = time.monotonic()
        pending.discard(future)
        bar.update(1)
        if future.cancelled() or future.exception() is not None:
            failed += 1
        else:
            acked += 1

    while True:
        elapsed = time.monotonic() - began
        due = min(total, int(rate * elapsed))
        while count < due:
            sender = senders[count % len(senders)]
            count += 1
            if sender.client is None:
                continue
            payload = {
                "client_id": f"{sender.user}-{count}",
                "content": "x" * 64,
                "metadata": {"t": time.time()},
            }
            future = sender.client.push_nowait(sender.topic, "send_message", payload)
            pending.add(future)
            future.add_done_callback(done)
        if count >= total:
            break
        await asyncio.sleep(tick)
    if pending:
        await asyncio.wait(pending, timeout=30)
        failed += len(pending)  # unanswered after 30 s: counted as failed
    bar.close()
    # Until the last answer, not the last send: a node asked for more than it can take
    # answers late, and its rate is what it answered in the time it took.
    return acked, failed, max(duration, last_answer - began)


async def _measure(scenario: Scenario, workdir: Path) -> dict[str, Any]:
    outside = scenario.urls or scenario.relay
    env = {} if outside else await asyncio.to_thread(_services_env)
    nodes_wanted = scenario.nodes if (env or scenario.urls) else 1
    async with contextlib.AsyncExitStack() as stack:
        if scenario.urls:
            nodes = _Nodes(urls=list(scenario.urls))
        elif scenario.relay:
            print("[gateway] starting the bare relay (no store, no broker)...", file=sys.stderr)
            nodes = await stack.enter_async_context(_start_relay())
        else:
            print(
                f"[gateway] starting {nodes_wanted} node(s) "
                f"({'PostgreSQL + Redis' if env else 'embedded SQLite'})...",
                file=sys.stderr,
            )
            nodes = await stack.enter_async_context(_start_nodes(nodes_wanted, env, workdir))
        urls = nodes.urls
        size = max(2, scenario.conversation_size)
        run = uuid.uuid4().hex[:6]
        users = [f"bench-{run}-{n}" for n in range(scenario.connections)]
        groups = [users[i : i + size] for i in range(0, len(users), size)]
        conversations = await _create_conversations(urls[0], groups)
        latencies: list[float] = []
        clients = [
            _Client(
                user,
                f"conversation:{cid}",
                urls[node_for(n, g, len(urls), scenario.placement)],
                latencies,
            )
            for g, (cid, group) in enumerate(zip(conversations, groups, strict=True))
            for n, user in enumerate(group)
        ]
        await asyncio.sleep(1.0)
        rss_before = nodes.rss()
        bar = tqdm(total=len(clients), desc="connect+join", unit="conn", file=sys.stderr)
        results = await _bounded([c.connect() for c in clients], 100, bar)
        bar.close()
        held = [c for c, r in zip(clients, results, strict=True) if r is None]
        errors = [r for r in results if r is not None]
        if not held:
            raise SystemExit(
                f"[gateway] no client could connect and join: first error {errors[0]!r}"
            )
        await asyncio.sleep(2.0)
        rss_after = nodes.rss()
        figures: dict[str, Any] = {
            "connections": scenario.connections,
            "connections_held": len(held),
            "connect_errors": len(errors),
            "first_connect_error": repr(errors[0]) if errors else None,
            "server_rss_bytes_per_connection": (
                (rss_after - rss_before) / len(held) if held and nodes.running else None
            ),
            "nodes": len(urls),
            "placement": scenario.placement,
            "store": (
                "none (bare relay)"
                if scenario.relay
                else "postgresql"
                if env.get("WHISPR_DATABASE_URL")
                else "sqlite"
            ),
        }
        meter = _CpuMeter(nodes, env)
        meter.start()
        acked, failed, elapsed = await _send_at_rate(held, scenario.rate, scenario.duration, "send")
        await asyncio.sleep(2.0)  # the last deliveries arrive
        figures.update(meter.per_message(acked))
        figures.update(
            {
                "rate_asked": scenario.rate,
                "duration_s": elapsed,
                "messages_acked": acked,
                "messages_failed": failed,
                "msgs_per_s": acked / elapsed,
                "deliveries": len(latencies),
                "deliveries_per_s": len(latencies) / elapsed,
            }
        )
        samples_ms = [s * 1e3 for s in latencies]
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            figures[f"latency_{name}_ms"] = percentile(samples_ms, fraction) if samples_ms else None
        figures.update(await _reconnect(held, scenario.reconnecting))
        figures["latency_samples_ms"] = samples_ms[:: max(1, len(samples_ms) // 20_000)]
        for client in held:
            await client.close()
        return figures


async def _reconnect(held: list[_Client], count: int) -> dict[str, Any]:
    """Drop ``count`` clients, send to their conversations, reconnect them all at once."""
    away = held[:count]
    if not away:
        return {"reconnecting": 0, "reconnect_catchup_p95_ms": None}
    print(f"[gateway] {len(away):,} clients reconnect at once...", file=sys.stderr)
    topics = {c.topic for c in away}
    stayed = {c.topic: c for c in held[count:]}
    for client in away:
        await client.close()
    # What they miss: one message per conversation, sent by a member who stayed if any.
    missed: dict[str, int] = {}
    for topic in topics:
        sender = stayed.get(topic)
        if sender is None or sender.client is None:
            continue
        reply = await sender.client.push(
            topic, "send_message", {"client_id": f"away-{uuid.uuid4().hex}", "content": "away"}
        )
        missed[topic] = reply["seq"]
    durations: list[float] = []

    async def back(client: _Client) -> None:
        client.wanted = missed.get(client.topic, 0)
        client.caught_up = asyncio.Event()
        if client.last_seq >= client.wanted:
            client.caught_up.set()
        began = time.monotonic()
        await client.connect({"last_seq": client.last_seq})
        await asyncio.wait_for(client.caught_up.wait(), 60)
        durations.append((time.monotonic() - began) * 1e3)

    bar = tqdm(total=len(away), desc="reconnect", unit="conn", file=sys.stderr)
    results = await _bounded([back(c) for c in away], len(away), bar)
    bar.close()
    failures = [r for r in results if r is not None]
    return {
        "reconnecting": len(away),
        "reconnect_failures": len(failures),
        "reconnect_catchup_p50_ms": percentile(durations, 0.5) if durations else None,
        "reconnect_catchup_p95_ms": percentile(durations, 0.95) if durations else None,
    }


# -- reporting --------------------------------------------------------------------------


def _markdown(figures: dict[str, Any], scenario: Scenario, command: str) -> str:
    rows = [
        ["connections_held", figures["connections_held"], TARGETS["connections_held"]],
        [
            "server_rss_bytes_per_connection",
            figures["server_rss_bytes_per_connection"],
            TARGETS["server_rss_bytes_per_connection"],
        ],
        ["msgs_per_s", figures["msgs_per_s"], TARGETS["msgs_per_s"]],
        ["deliveries_per_s", figures["deliveries_per_s"], ""],
        ["latency_p50_ms", figures["latency_p50_ms"], ""],
        ["latency_p95_ms", figures["latency_p95_ms"], TARGETS["latency_p95_ms"]],
        ["latency_p99_ms", figures["latency_p99_ms"], ""],
        ["server_cpu_us_per_msg", figures["server_cpu_us_per_msg"], ""],
        ["generator_cpu_us_per_msg", figures["generator_cpu_us_per_msg"], ""],
        ["store_cpu_us_per_msg", figures["store_cpu_us_per_msg"], ""],
        ["broker_cpu_us_per_msg", figures["broker_cpu_us_per_msg"], ""],
        ["other_cpu_us_per_msg", figures["other_cpu_us_per_msg"], ""],
        ["machine_cpu_us_per_msg", figures["machine_cpu_us_per_msg"], ""],
        ["machine_busy_fraction", figures["machine_busy_fraction"], ""],
        [
            "reconnect_catchup_p95_ms",
            figures["reconnect_catchup_p95_ms"],
            TARGETS["reconnect_catchup_p95_ms"],
        ],
    ]
    return (
        "# Gateway: WebSocket clients against real nodes\n\n"
        f"{scenario.connections:,} connections in conversations of {scenario.conversation_size}, "
        f"{scenario.rate:,.0f} msgs/s asked for {scenario.duration:g} s, "
        f"{figures['nodes']} node(s) on {figures['store']}"
        + (f" (members placed by {scenario.placement})" if figures["nodes"] > 1 else "")
        + "; "
        f"{figures['messages_acked']:,} messages acknowledged, "
        f"{figures['messages_failed']:,} failed; {figures['deliveries']:,} deliveries timed "
        "from send to arrival at each recipient.\n\n"
        + markdown_table(["figure", "value", "target (docs/design.md, section 9)"], rows)
        + _cores_needed(figures)
        + _ceiling(figures.get("ceiling"))
        + f"\nReproduce: `{command}`. Load generator and nodes share this machine's cores.\n"
    )


def _cores_needed(figures: dict[str, Any]) -> str:
    """What the target rate would take of this machine, at the CPU per message measured."""
    per_message = figures.get("machine_cpu_us_per_msg")
    if not per_message:
        return ""
    cores = per_message * TARGET_RATE / 1e6
    return (
        f"\nAt {TARGET_RATE:,} msgs/s, the CPU per message measured here (nodes, generator, "
        f"and whatever else ran) would keep {cores:.2f} cores busy; this machine has "
        f"{psutil.cpu_count()}. A rate measured at a lower load costs more per message "
        "than at a higher one (batches grow with the load), so this is an upper bound.\n"
    )


def _ceiling(ceiling: dict[str, Any] | None) -> str:
    """The bare relay's figures under the same load, measured right after the nodes'."""
    if ceiling is None:
        return ""
    rows = [
        [name, ceiling[name], TARGETS.get(name, "")]
        for name in CEILING_FIGURES
        if ceiling[name] is not None
    ]
    return (
        "\n## The ceiling: the bare relay under the same load, right after\n\n"
        "The same clients and scenario against `whispr/bench/relay.py` (WebSocket, joins, "
        "acknowledgements and broadcasts from memory: no store, broker, actors or limits). "
        "A target the relay misses too was out of this machine's reach at that moment.\n\n"
        + markdown_table(["figure", "bare relay", "target (docs/design.md, section 9)"], rows)
    )


def run(scenario: Scenario, out: Path, command: str) -> dict[str, Any]:
    """Measure ``scenario``; write gateway.json, gateway.md and gateway.png under ``out``."""
    import uvloop

    out.mkdir(parents=True, exist_ok=True)
    workdir = out / ".gateway-work"
    workdir.mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (workdir / "bench.db").unlink()
    figures = uvloop.run(_measure(scenario, workdir))
    samples = {"send to delivery": figures.pop("latency_samples_ms")}
    if scenario.ceiling:
        print("[gateway] the same scenario against the bare relay: the ceiling", file=sys.stderr)
        against_relay = dataclasses.replace(scenario, relay=True, urls=(), ceiling=False)
        relay = uvloop.run(_measure(against_relay, workdir))
        samples["bare relay, same load"] = relay.pop("latency_samples_ms")
        figures["ceiling"] = {name: relay[name] for name in CEILING_FIGURES}
    report = {**figures, "scenario": scenario.__dict__, "machine": machine(), "targets": TARGETS}
    write_json(out / "gateway.json", report)
    text = _markdown(figures, scenario, command)
    write_text(out / "gateway.md", text)
    if samples["send to delivery"]:
        plot_cdf(
            out / "gateway.png",
            samples,
            title="Gateway: message latency at every recipient",
            xlabel="ms",
            marks={"P95 target 50 ms": 50.0},
        )
    print(text, flush=True)
    return report


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """The ``make bench`` scenario, sized for a 2-core machine (smaller with ``quick``)."""
    if quick:
        scenario = Scenario(connections=200, rate=200, duration=5, reconnecting=100)
    else:
        scenario = Scenario()
    return run(scenario, out, "make bench BENCH_ARGS=gateway")


def main(argv: Sequence[str] | None = None) -> int:
    """``whispr bench``: parse the scenario and run it."""
    parser = argparse.ArgumentParser(prog="whispr bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=Scenario.connections)
    parser.add_argument("--conversation-size", type=int, default=Scenario.conversation_size)
    parser.add_argument("--rate", type=float, default=Scenario.rate, help="messages/s in total")
    parser.add_argument("--duration", type=float, default=Scenario.duration, help="seconds")
    parser.add_argument("--nodes", type=int, default=Scenario.nodes)
    parser.add_argument(
        "--reconnecting", type=int, default=Scenario.reconnecting, help="clients that reconnect"
    )
    parser.add_argument(
        "--url", action="append", default=[], help="a running node's WebSocket URL (repeatable)"
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="measure the bare relay (no store, broker or actors) instead of nodes: the ceiling",
    )
    parser.add_argument(
        "--placement",
        choices=PLACEMENTS,
        default=Scenario.placement,
        help="with several nodes: spread each conversation's members over them (default), "
        "or put each conversation's members on one node",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="then run the same scenario against the bare relay, and report both: "
        "what this machine allowed at that moment",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    for name in ("connections", "conversation_size", "nodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    try:
        scenario = Scenario(
            connections=args.connections,
            conversation_size=args.conversation_size,
            rate=args.rate,
            duration=args.duration,
            nodes=args.nodes,
            reconnecting=args.reconnecting,
            urls=tuple(args.url),
            relay=args.relay,
            placement=args.placement,
            ceiling=args.ceiling,
        )
    except ValueError as exc:
        parser.error(str(exc))
    command = "whispr bench " + " ".join(sys.argv[2:] if argv is None else argv)
    run(scenario, args.out, command.strip())
    return 0
