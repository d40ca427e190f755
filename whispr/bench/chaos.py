"""Chaos run: three nodes under traffic while nodes, Redis and PostgreSQL fail; is anything lost?

``whispr chaos`` (``make chaos``) starts its own PostgreSQL and Redis in a temporary directory
(:mod:`whispr.bench.chaos_services`: never the shared ones) and three ``whispr serve`` nodes on
them. Clients (:mod:`whispr.bench.chaos_clients`) in conversations of 2 to 50 members, spread
over the nodes, send messages with unique client ids, retry a send on any error with the same
id, and reconnect to any live node with ``last_seq`` when their connection drops.

Meanwhile faults, one at a time: a scheduled round of each kind, then ``--random-faults`` more
of random kinds at random times (``--seed``):

* ``kill``: SIGKILL a node, start it again after ``--restart-after`` s;
* ``term``: SIGTERM a node (it drains), start it again after ``--restart-after`` s;
* ``redis``: SIGKILL Redis, start it again (empty) after ``--outage-s`` s;
* ``postgres``: stop PostgreSQL (immediate: as a crash), start it after ``--outage-s`` s;
* ``redis-net``: between one node and Redis (its ``WHISPR_REDIS_URL`` names a
  :class:`~whispr.bench.faultproxy.FaultProxy`), 500 ms of delay each way for
  ``--net-fault-s`` s, then a partition (silence on open sockets) for as long, then healed;

and, beside them, ``--actor-crashes`` actor crashes at random times, each of one random
conversation actor or connection actor of a random live node (SIGUSR1 or SIGUSR2, with
``WHISPR_CHAOS_HOOKS=1``: :mod:`whispr.chaos_hooks`); and, unless ``--no-removal``, a member
of the largest conversation removed over gRPC at a seeded time, whose client is not told and
goes on sending.

Then every client is brought back and caught up, and :mod:`whispr.bench.chaos_check` reads
every acknowledgement, every client's received stream and the store. Writes ``chaos.json``
and ``chaos.md``; exit status 1 when a promise was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from actors.conversation import SYSTEM_SENDER
from whispr.bench.chaos_check import History, Send, Session, check
from whispr.bench.chaos_clients import PUSH_TIMEOUT_S, Journal, Member
from whispr.bench.chaos_services import PrivatePostgres, PrivateRedis, services_missing
from whispr.bench.faultproxy import FaultProxy
from whispr.bench.gateway import _create_conversations, node_for
from whispr.bench.nodes import NodeProcess, free_port, start_node_process
from whispr.bench.report import machine, markdown_table, write_json, write_text

__all__ = ["FAULT_KINDS", "ChaosScenario", "main", "run"]

FAULT_KINDS = ("kill", "term", "redis-net", "redis", "postgres")
NODES = 3
#: The node whose Redis traffic goes through the fault proxy.
PROXIED_NODE = NODES - 1
#: The delay each way in the first half of a ``redis-net`` fault.
NET_DELAY_S = 0.5
#: Which signal crashes which kind of actor (see whispr/chaos_hooks.py).
CRASH_SIGNALS = {"conversation": signal.SIGUSR1, "connection": signal.SIGUSR2}
#: What the run's own gRPC calls (the member removal) present to the nodes.
GRPC_TOKEN = "chaos-run-token"


@dataclass(frozen=True)
class ChaosScenario:
    """One chaos run's shape."""

    duration: float = 480.0
    outage_s: float = 30.0
    restart_after: float = 5.0
    clients: int = 120
    rate: float = 40.0
    random_faults: int = 2
    net_fault_s: float = 10.0
    actor_crashes: int = 8
    seed: int = 1
    removal: bool = True
    kinds: tuple[str, ...] = FAULT_KINDS

    @property
    def give_up_s(self) -> float:
        """How long a send is retried: longer than an outage plus a node's recovery from it."""
        return self.outage_s + 60.0


@dataclass
class _Fault:
    kind: str
    node: int | None
    planned_s: float
    at_s: float | None = None
    restored_s: float | None = None
    #: For ``redis-net``: when the delay gave way to the partition.
    partitioned_s: float | None = None
    measured: dict[str, float | int | None] = field(default_factory=dict)


@dataclass
class _Crash:
    """One actor crash asked of a node through its chaos hook."""

    actor: str
    planned_s: float
    node: int | None = None
    at_s: float | None = None
    #: The fault under way when it happened, whose drops and refusals mix with its own.
    during: str | None = None
    measured: dict[str, float | int | None] = field(default_factory=dict)


class _Cluster:
    """The three nodes, which come and go; clients ask it which are up."""

    def __init__(self, env: dict[str, str], overrides: dict[int, dict[str, str]]) -> None:
        self.env = {**env, "WHISPR_GRPC_TOKENS": f"chaos={GRPC_TOKEN}", "WHISPR_CHAOS_HOOKS": "1"}
        self.overrides = overrides
        self.nodes: list[NodeProcess | None] = [None] * NODES
        self.grpc_ports = [0] * NODES

    async def start(self, index: int) -> None:
        self.grpc_ports[index] = free_port()
        env = {
            **self.env,
            **self.overrides.get(index, {}),
            "WHISPR_GRPC_PORT": str(self.grpc_ports[index]),
            "WHISPR_HTTP_PORT": str(free_port()),
        }
        self.nodes[index] = await start_node_process(f"chaos-{index}", env)

    def signal(self, index: int, sig: signal.Signals) -> bool:
        """Send ``sig`` to node ``index``; False when it is not up."""
        node = self.nodes[index]
        if node is None or node.process.returncode is not None:
            return False
        node.process.send_signal(sig)
        return True

    def grpc_addresses(self) -> list[str]:
        """The gRPC address of each live node."""
        return [
            f"127.0.0.1:{port}"
            for node, port in zip(self.nodes, self.grpc_ports, strict=True)
            if node is not None
        ]

    def live(self) -> list[tuple[str, str]]:
        return [(n.name, n.url) for n in self.nodes if n is not None]

    async def kill(self, index: int) -> None:
        node, self.nodes[index] = self.nodes[index], None
        if node is not None:
            node.process.kill()
            await node.process.wait()

    async def term(self, index: int) -> None:
        node, self.nodes[index] = self.nodes[index], None
        if node is not None:
            await node.stop(timeout=40)

    async def close(self) -> None:
        await asyncio.gather(*(n.stop(timeout=10) for n in self.nodes if n is not None))
        self.nodes = [None] * NODES


def _conversation_sizes(clients: int, rng: random.Random) -> list[int]:
    """One conversation of up to 50, the rest of 2 to 10 members: big fan-out and many small."""
    first = min(50, clients)
    sizes = [first - 1 if clients - first == 1 else first]
    left = clients - sizes[0]
    while left >= 2:
        size = min(left, rng.randint(2, 10))
        if left - size == 1:
            size += 1
        sizes.append(size)
        left -= size
    return sizes


def _plan(scenario: ChaosScenario, rng: random.Random) -> list[_Fault]:
    """Each kind once at evenly spaced times, then the random ones; in order of time.

    Which node a kill or term hits is chosen when it happens (:func:`_busiest`), not here.
    """
    kinds = list(scenario.kinds)
    window = scenario.duration * 0.8
    plan = [
        _Fault(kind, None, at)
        for kind, at in zip(
            kinds, [window * (i + 0.5) / len(kinds) for i in range(len(kinds))], strict=True
        )
    ]
    for _ in range(scenario.random_faults):
        plan.append(_Fault(rng.choice(kinds), None, rng.uniform(0.1, 0.8) * scenario.duration))
    return sorted(plan, key=lambda f: f.planned_s)


@dataclass
class _Rig:
    """What faults act on: the nodes, the services, the proxy before one node's Redis."""

    cluster: _Cluster
    pg: PrivatePostgres
    redis: PrivateRedis
    proxy: FaultProxy


async def _inject(
    fault: _Fault,
    scenario: ChaosScenario,
    rig: _Rig,
    members: list[Member],
    began: float,
) -> None:
    cluster = rig.cluster
    if fault.kind in ("kill", "term"):
        fault.node = _busiest(cluster, members)
    elif fault.kind == "redis-net":
        fault.node = PROXIED_NODE
    fault.at_s = time.monotonic() - began
    where = "" if fault.node is None else f" node {fault.node}"
    print(f"[chaos] {fault.at_s:6.1f} s  {fault.kind}{where}", file=sys.stderr)
    if fault.kind == "redis-net":
        rig.proxy.delay(NET_DELAY_S)
        await asyncio.sleep(scenario.net_fault_s)
        rig.proxy.partition()
        fault.partitioned_s = time.monotonic() - began
        print(f"[chaos] {fault.partitioned_s:6.1f} s  redis-net: partition", file=sys.stderr)
        await asyncio.sleep(scenario.net_fault_s)
        rig.proxy.heal()
    elif fault.node is not None:
        if fault.kind == "kill":
            await cluster.kill(fault.node)
        else:
            await cluster.term(fault.node)
        await asyncio.sleep(scenario.restart_after)
        await cluster.start(fault.node)
    else:
        service: PrivatePostgres | PrivateRedis = rig.pg if fault.kind == "postgres" else rig.redis
        await asyncio.to_thread(service.stop)
        await asyncio.sleep(scenario.outage_s)
        await asyncio.to_thread(service.start)
    fault.restored_s = time.monotonic() - began
    print(f"[chaos] {fault.restored_s:6.1f} s  {fault.kind} restored", file=sys.stderr)


async def _faults(
    plan: list[_Fault],
    scenario: ChaosScenario,
    rig: _Rig,
    members: list[Member],
    began: float,
) -> None:
    """One fault at a time, each at its planned time or when the one before is over.

    None starts after 85 % of the run: the rest is for the last one to heal before the end.
    """
    for fault in plan:
        wait = began + fault.planned_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if time.monotonic() - began > scenario.duration * 0.85:
            print(f"[chaos] skipped {fault.kind}: too late in the run", file=sys.stderr)
            continue
        await _inject(fault, scenario, rig, members, began)


def _plan_crashes(scenario: ChaosScenario, rng: random.Random) -> list[_Crash]:
    """``actor_crashes`` crashes at random times in the run, of random kinds, in time order."""
    crashes = [
        _Crash(rng.choice(sorted(CRASH_SIGNALS)), rng.uniform(0.05, 0.85) * scenario.duration)
        for _ in range(scenario.actor_crashes)
    ]
    return sorted(crashes, key=lambda c: c.planned_s)


async def _crash_actors(
    crashes: list[_Crash], cluster: _Cluster, rng: random.Random, began: float
) -> None:
    """Each crash at its time, on a random live node (whatever other fault is under way)."""
    for crash in crashes:
        await asyncio.sleep(max(0.0, began + crash.planned_s - time.monotonic()))
        live = [i for i, node in enumerate(cluster.nodes) if node is not None]
        if not live:
            continue
        node = rng.choice(live)
        if cluster.signal(node, CRASH_SIGNALS[crash.actor]):
            crash.node = node
            crash.at_s = time.monotonic() - began
            print(
                f"[chaos] {crash.at_s:6.1f} s  crash a {crash.actor} actor on node {node}",
                file=sys.stderr,
            )


def _busiest(cluster: _Cluster, members: list[Member]) -> int:
    """The live node with the most clients connected: a node fault that drops nobody (a node
    just restarted, which clients have not come back to) would test nothing."""
    load = Counter(m.node for m in members if m.connected.is_set())
    live = [i for i, node in enumerate(cluster.nodes) if node is not None]
    return max(live, key=lambda i: load[f"chaos-{i}"])


def _recovery(
    fault: _Fault, journal: Journal, began: float, next_fault: float
) -> dict[str, float | int | None]:
    """Measured around ``fault``: from its restore to the first ack and cross-node delivery
    of a message sent after it; from the fault until the clients it dropped were joined again
    (elsewhere, for a node fault; drops from ``next_fault`` on are not its); cross-node
    deliveries of messages sent during it. For a
    ``redis-net`` fault, per phase (delay, partition), the slowest delivery of a message sent
    then from another node to the faulted node's clients, and from its clients to others'.
    """
    if fault.at_s is None or fault.restored_s is None:
        return {}
    at, restored = began + fault.at_s, began + fault.restored_s
    first_ack = min((t for t in journal.acks if t >= restored), default=None)
    # time.time() stamps from the sender; the shift to monotonic is constant within the run.
    shift = time.time() - time.monotonic()
    cross = [
        (got, sent - shift, sender, receiver)
        for got, sent, sender, receiver in journal.deliveries
        if sender != receiver
    ]
    first_cross = min((got for got, sent, _, _ in cross if sent >= restored), default=None)
    # Drops the next fault caused are its own.
    drops = [(d, r) for _, d, r in journal.outages if at - 1 <= d <= min(restored + 5, next_fault)]
    back = sorted(r - at for _, r in drops if r is not None)
    measured: dict[str, float | int | None] = {
        "clients_dropped": len(drops),
        "clients_back_max_s": back[-1] if back else None,
        "clients_back_median_s": back[len(back) // 2] if back else None,
        "cross_node_deliveries_sent_during_fault": sum(
            1 for _, sent, _, _ in cross if at <= sent < restored
        ),
        "ack_resumed_after_restore_s": None if first_ack is None else first_ack - restored,
        "cross_node_delivery_resumed_after_restore_s": (
            None if first_cross is None else first_cross - restored
        ),
    }
    if fault.kind == "redis-net" and fault.partitioned_s is not None:
        node = f"chaos-{fault.node}"
        partitioned = began + fault.partitioned_s
        for phase, (start, end) in {
            "delay": (at, partitioned),
            "partition": (partitioned, restored),
        }.items():
            into = [got - sent for got, sent, _, to in cross if to == node and start <= sent < end]
            out = [got - sent for got, sent, by, _ in cross if by == node and start <= sent < end]
            measured[f"{phase}_deliveries_into_node"] = len(into)
            measured[f"{phase}_slowest_into_node_s"] = max(into, default=None)
            measured[f"{phase}_slowest_out_of_node_s"] = max(out, default=None)
    return measured


def _store_down(plan: list[_Fault], began: float, ended: float) -> list[tuple[float, float]]:
    """When the store could not answer: each PostgreSQL outage, from its start until the first
    acknowledgement after it (the store breaker stays open a while after the restart)."""
    windows = []
    for fault in plan:
        if fault.kind != "postgres" or fault.at_s is None or fault.restored_s is None:
            continue
        resumed = fault.measured.get("ack_resumed_after_restore_s")
        end = ended if resumed is None else began + fault.restored_s + float(resumed)
        windows.append((began + fault.at_s, end))
    return windows


def _crash_effects(crash: _Crash, journal: Journal, began: float) -> dict[str, float | int | None]:
    """What clients saw in the 3 s after an actor crash: connections dropped (a connection
    actor's socket is closed with 1011) and how soon they were back, sends refused."""
    if crash.at_s is None:
        return {}
    at = began + crash.at_s
    drops = [(d, r) for _, d, r in journal.outages if at <= d <= at + 3]
    back = sorted(r - at for _, r in drops if r is not None)
    return {
        "clients_dropped": len(drops),
        "clients_back_max_s": back[-1] if back else None,
        "send_failures_within_3_s": sum(1 for t, _ in journal.failures if at <= t <= at + 3),
    }


@dataclass
class _Removal:
    member: Member
    conversation_id: str
    planned_s: float
    acked_s: float | None = None
    acked_at: float | None = None
    error: str | None = None


async def _remove(removal: _Removal, cluster: _Cluster, began: float, give_up_s: float) -> None:
    """RemoveMember over gRPC, at its planned time, through any live node until acknowledged.

    The member is not told: it sends at once on the connection it holds, and keeps sending
    for a few seconds (every such send must be refused), and its connection is dropped so
    that it tries to rejoin (which must be refused too).
    """
    import grpc

    from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
    from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

    await asyncio.sleep(max(0.0, began + removal.planned_s - time.monotonic()))
    member = removal.member
    print(f"[chaos] {time.monotonic() - began:6.1f} s  removing {member.user}", file=sys.stderr)
    request = pb.RemoveMemberRequest(conversation_id=removal.conversation_id, user_id=member.user)
    auth = (("authorization", f"Bearer {GRPC_TOKEN}"),)
    deadline = time.monotonic() + give_up_s
    attempt = 0
    while True:
        addresses = cluster.grpc_addresses()
        address = addresses[attempt % len(addresses)] if addresses else None
        attempt += 1
        try:
            if address is None:
                raise ConnectionError("no node up")
            async with grpc.aio.insecure_channel(address) as channel:
                stub: Any = pb_grpc.MessagingServiceStub(channel)  # type: ignore[no-untyped-call]
                await stub.RemoveMember(request, metadata=auth, timeout=10)
        except (grpc.aio.AioRpcError, ConnectionError) as exc:
            removal.error = str(exc)[:200]
            if time.monotonic() > deadline:
                print(f"[chaos] removal gave up: {removal.error}", file=sys.stderr)
                return
            await asyncio.sleep(1.0)
            continue
        break
    removal.acked_at = member.removed_at = time.monotonic()
    removal.acked_s = removal.acked_at - began
    removal.error = None
    await member.send_one()  # on the socket it still holds: must be refused
    await member.reconnect()  # and its rejoin too


async def _settle(members: list[Member], newest: dict[str, int], timeout: float) -> None:
    """Wait until every member holds its conversation's stored seqs, forcing a rejoin (catch-up
    from ``below``) for one stuck behind a hole for a few seconds."""
    deadline = time.monotonic() + timeout
    last_nudge = time.monotonic()
    while time.monotonic() < deadline:
        behind = [m for m in members if m.removed_at is None and m.below < newest.get(m.topic, 0)]
        if not behind:
            return
        if time.monotonic() - last_nudge > 5:
            last_nudge = time.monotonic()
            await asyncio.gather(*(m.reconnect() for m in behind))
        await asyncio.sleep(0.2)


async def _stored(url: str, topics: Sequence[str]) -> dict[str, list[tuple[int, str, str]]]:
    import asyncpg

    ids = {topic.removeprefix("conversation:"): topic for topic in topics}
    connection = await asyncpg.connect(url, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT conversation_id, seq, sender_id, client_id FROM messages "
            "WHERE conversation_id = ANY($1::text[])",
            list(ids),
        )
    finally:
        await connection.close()
    stored: dict[str, list[tuple[int, str, str]]] = {topic: [] for topic in topics}
    for row in rows:
        stored[ids[row["conversation_id"]]].append(
            (int(row["seq"]), row["sender_id"], row["client_id"])
        )
    return stored


async def _measure(scenario: ChaosScenario, workdir: Path) -> dict[str, Any]:
    rng = random.Random(scenario.seed)
    random.seed(scenario.seed)
    pg, redis = PrivatePostgres(workdir), PrivateRedis(workdir)
    print(f"[chaos] PostgreSQL on :{pg.port}, Redis on :{redis.port}", file=sys.stderr)
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(redis.start)
    proxy = FaultProxy("127.0.0.1", redis.port)
    await proxy.start()
    print(f"[chaos] node {PROXIED_NODE} reaches Redis through :{proxy.port}", file=sys.stderr)
    cluster = _Cluster(
        {
            "WHISPR_DATABASE_URL": pg.url,
            "WHISPR_REDIS_URL": redis.url,
            "WHISPR_REDIS_PREFIX": f"chaos-{uuid.uuid4().hex[:8]}",
            "WHISPR_MAX_CONNECTIONS_PER_IP": "1000000",
            "WHISPR_RATE_LIMIT_PER_MINUTE": "1000000",
            "WHISPR_LOG_LEVEL": "error",
        },
        {PROXIED_NODE: {"WHISPR_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}},
    )
    try:
        for index in range(NODES):
            await cluster.start(index)
        return await _traffic(scenario, rng, _Rig(cluster, pg, redis, proxy))
    finally:
        await cluster.close()
        await proxy.close()
        await asyncio.to_thread(redis.close)
        await asyncio.to_thread(pg.close)


async def _traffic(scenario: ChaosScenario, rng: random.Random, rig: _Rig) -> dict[str, Any]:
    cluster = rig.cluster
    run_id = uuid.uuid4().hex[:6]
    sizes = _conversation_sizes(scenario.clients, rng)
    users = [f"chaos-{run_id}-{n}" for n in range(sum(sizes))]
    groups, start = [], 0
    for size in sizes:
        groups.append(users[start : start + size])
        start += size
    conversations = await _create_conversations(cluster.live()[0][1], groups)
    journal = Journal()
    members = [
        Member(
            user,
            f"conversation:{cid}",
            node_for(n, g, NODES, "spread"),
            cluster.live,
            journal,
            scenario.give_up_s,
        )
        for g, (cid, group) in enumerate(zip(conversations, groups, strict=True))
        for n, user in enumerate(group)
    ]
    stop_links, stop_sends = asyncio.Event(), asyncio.Event()
    links = [asyncio.create_task(m.maintain(stop_links)) for m in members]
    await asyncio.wait_for(asyncio.gather(*(m.connected.wait() for m in members)), 60)
    plan = _plan(scenario, rng)
    crashes = _plan_crashes(scenario, rng)
    began = time.monotonic()
    interval = len(members) / scenario.rate
    sends = [asyncio.create_task(m.send_loop(interval, stop_sends)) for m in members]
    faults = asyncio.create_task(_faults(plan, scenario, rig, members, began))
    crashing = asyncio.create_task(
        _crash_actors(crashes, cluster, random.Random(scenario.seed + 1), began)
    )
    removal = None
    if scenario.removal:
        # A plain member (not the owner) of the largest conversation, at a seeded time.
        target = members[rng.randrange(1, sizes[0])]
        removal = _Removal(
            target,
            target.topic.removeprefix("conversation:"),
            rng.uniform(0.3, 0.6) * scenario.duration,
        )
        removing = asyncio.create_task(_remove(removal, cluster, began, scenario.give_up_s))
    await asyncio.sleep(scenario.duration)
    # A fault still under way heals first: the end state is a whole cluster.
    await faults
    await crashing
    if removal is not None:
        await removing
    stop_sends.set()
    bound = scenario.give_up_s + PUSH_TIMEOUT_S + 5
    await asyncio.wait(sends, timeout=bound)
    elapsed = time.monotonic() - began
    hung = [Send(m.topic, m.user, m.current[0], m.current[1], None) for m in members if m.current]
    for task in sends:
        task.cancel()
    topics = sorted({m.topic for m in members})
    stored = await _stored(rig.pg.url, topics)
    newest = {topic: max((s for s, _, _ in rows), default=0) for topic, rows in stored.items()}
    settle_began = time.monotonic()
    await _settle(members, newest, timeout=90)
    settle_s = time.monotonic() - settle_began
    stop_links.set()
    await asyncio.gather(*links, return_exceptions=True)
    ended = time.monotonic()
    for index, fault in enumerate(plan):
        later = [f.at_s for f in plan[index + 1 :] if f.at_s is not None]
        fault.measured = _recovery(fault, journal, began, began + later[0] if later else ended)
    for crash in crashes:
        crash.measured = _crash_effects(crash, journal, began)
        crash.during = next(
            (
                f.kind
                for f in plan
                if crash.at_s is not None
                and f.at_s is not None
                and f.restored_s is not None
                and f.at_s - 1 <= crash.at_s <= f.restored_s + 5
            ),
            None,
        )
    history = History(
        sends=[*journal.sends, *hung],
        received={(m.user, m.topic): list(m.deliveries) for m in members},
        joined_with={(m.user, m.topic): list(m.joins) for m in members},
        stored=stored,
        errors=journal.errors,
        sessions={
            (m.user, m.topic): [Session(joined, closed) for joined, closed in m.sessions]
            for m in members
        },
        ended=ended,
        store_down=_store_down(plan, began, ended),
    )
    if removal is not None and removal.acked_at is not None:
        topic = removal.member.topic
        system = [seq for seq, sender, _ in stored[topic] if sender == SYSTEM_SENDER]
        history.removals[(removal.member.user, topic)] = (
            removal.acked_at,
            max(system) if system else None,
        )
    result = check(history, send_bound_s=bound)
    return {
        "conversation_sizes": sizes,
        "duration_s": elapsed,
        "catch_up_at_end_s": settle_s,
        "send_bound_s": bound,
        "faults": [asdict(f) for f in plan],
        "actor_crashes": [asdict(c) for c in crashes],
        "store_down_s": [(low - began, high - began) for low, high in history.store_down],
        "removal": None
        if removal is None
        else {
            "member": removal.member.user,
            "conversation": removal.conversation_id,
            "planned_s": removal.planned_s,
            "acked_s": removal.acked_s,
            "error": removal.error,
            "sends_refused_after": sum(
                1
                for send in journal.sends
                if send.sender == removal.member.user
                and removal.acked_at is not None
                and send.began > removal.acked_at
                and not send.acked_seqs
            ),
        },
        **result,
    }


def _markdown(report: dict[str, Any], command: str) -> str:
    scenario, counts = report["scenario"], report["counts"]
    fault_rows = [
        [
            f["kind"] + (f" node {f['node']}" if f["node"] is not None else ""),
            f["at_s"],
            f["restored_s"],
            f["measured"].get("clients_dropped"),
            f["measured"].get("clients_back_median_s"),
            f["measured"].get("clients_back_max_s"),
            f["measured"].get("cross_node_deliveries_sent_during_fault"),
            f["measured"].get("ack_resumed_after_restore_s"),
            f["measured"].get("cross_node_delivery_resumed_after_restore_s"),
        ]
        for f in report["faults"]
        if f["at_s"] is not None
    ]
    verdict_rows = [
        [name, "ok" if v["ok"] else "**FAILED**", v["count"], "; ".join(v["examples"][:2])]
        for name, v in report["verdicts"].items()
    ]
    error_rows = [[reason, n] for reason, n in counts["errors_by_reason"].items()]
    sizes = report["conversation_sizes"]
    return (
        "# Chaos: faults under traffic; is anything lost, duplicated or stuck?\n\n"
        f"{sum(sizes)} clients in {len(sizes)} conversations of {min(sizes)} to {max(sizes)} "
        f"members over 3 nodes, {scenario['rate']:g} msgs/s asked for "
        f"{report['duration_s']:.0f} s; outages of {scenario['outage_s']:g} s, seed "
        f"{scenario['seed']}. {counts['sends']:,} sends, {counts['acknowledged']:,} "
        f"acknowledged, {counts['given_up']:,} given up; {counts['stored']:,} stored, "
        f"{counts['deliveries']:,} deliveries; every client caught up "
        f"{report['catch_up_at_end_s']:.1f} s after the traffic stopped.\n\n"
        "## Faults (times in s from the start of the traffic)\n\n"
        + markdown_table(
            [
                "fault",
                "at",
                "restored",
                "clients dropped",
                "dropped clients back (median)",
                "all back",
                "cross-node deliveries sent during it",
                "first ack after restore",
                "first cross-node delivery after restore",
            ],
            fault_rows,
        )
        + _net_table(report["faults"])
        + _crash_table(report["actor_crashes"])
        + _removal_line(report.get("removal"))
        + _lag_line(report["delivery_lag"], report["store_down_s"])
        + "\n## Verdicts\n\n"
        + markdown_table(["promise", "verdict", "violations", "examples"], verdict_rows)
        + "\n## Errors clients saw, by reason\n\n"
        + markdown_table(["reason", "count"], error_rows)
        + f"\nAll promises kept: {'yes' if report['ok'] else '**no**'}. Reproduce: `{command}`.\n"
    )


def _net_table(faults: list[dict[str, Any]]) -> str:
    rows = [
        [
            f"{f['at_s']:.1f}",
            f["node"],
            phase,
            f["measured"].get(f"{phase}_deliveries_into_node"),
            f["measured"].get(f"{phase}_slowest_into_node_s"),
            f["measured"].get(f"{phase}_slowest_out_of_node_s"),
        ]
        for f in faults
        if f["kind"] == "redis-net" and f["partitioned_s"] is not None
        for phase in ("delay", "partition")
    ]
    if not rows:
        return ""
    return (
        f"\n## Network faults between a node and Redis ({NET_DELAY_S * 1000:.0f} ms delay, "
        "then a partition)\n\nDeliveries of messages sent during each phase, between the "
        "faulted node's clients and the others' (seconds from send to receipt):\n\n"
        + markdown_table(
            [
                "fault at",
                "node",
                "phase",
                "deliveries into the node",
                "slowest into the node",
                "slowest out of the node",
            ],
            rows,
        )
    )


def _crash_table(crashes: list[dict[str, Any]]) -> str:
    rows = [
        [
            c["actor"],
            c["node"],
            c["at_s"],
            c["during"] or "",
            c["measured"].get("clients_dropped"),
            c["measured"].get("clients_back_max_s"),
            c["measured"].get("send_failures_within_3_s"),
        ]
        for c in crashes
        if c["at_s"] is not None
    ]
    if not rows:
        return ""
    return "\n## Actor crashes (a chaos hook signal to the node)\n\n" + markdown_table(
        [
            "actor",
            "node",
            "at",
            "during fault",
            "clients dropped within 3 s",
            "all back after",
            "sends refused within 3 s",
        ],
        rows,
    )


def _lag_line(lag: dict[str, Any], store_down: list[tuple[float, float]]) -> str:
    if not lag["measured"]:
        return ""
    paused = ", ".join(f"{low:.1f}-{high:.1f} s" for low, high in store_down)
    return (
        f"\nDelivery lag (acknowledgement to receipt, while joined; {lag['measured']:,} "
        f"measured): median {lag['median_s']:.3f} s, P99 {lag['p99_s']:.3f} s, max "
        f"{lag['max_s']:.2f} s; bound {lag['bound_s']:g} s"
        + (f", its clock stopped while the store could not answer ({paused})" if paused else "")
        + ".\n"
    )


def _removal_line(removal: dict[str, Any] | None) -> str:
    if removal is None:
        return ""
    if removal["acked_s"] is None:
        return f"\nMember removal: not acknowledged ({removal['error']}).\n"
    return (
        f"\nMember removal: {removal['member']} removed at {removal['acked_s']:.1f} s "
        f"(acknowledged); {removal['sends_refused_after']} of its sends begun after were "
        "refused, as they must be.\n"
    )


def run(scenario: ChaosScenario, out: Path, command: str) -> dict[str, Any]:
    """Run ``scenario``; write chaos.json and chaos.md under ``out``."""
    import uvloop

    missing = services_missing()
    if missing:
        raise SystemExit(f"whispr chaos needs {', '.join(missing)} on this machine")
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="whispr-chaos-"))
    try:
        measured = uvloop.run(_measure(scenario, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"scenario": asdict(scenario), **measured, "machine": machine()}
    write_json(out / "chaos.json", report)
    text = _markdown(report, command)
    write_text(out / "chaos.md", text)
    print(text, flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``whispr chaos``: parse the scenario and run it; exit status 1 if a promise was broken."""
    parser = argparse.ArgumentParser(prog="whispr chaos", description=__doc__.split("\n\n")[0])
    defaults = ChaosScenario()
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    parser.add_argument(
        "--outage-s", type=float, default=defaults.outage_s, help="Redis/PostgreSQL outage"
    )
    parser.add_argument(
        "--restart-after", type=float, default=defaults.restart_after, help="node down, seconds"
    )
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="messages/s in total")
    parser.add_argument("--random-faults", type=int, default=defaults.random_faults)
    parser.add_argument(
        "--net-fault-s",
        type=float,
        default=defaults.net_fault_s,
        help="redis-net: seconds of delay, then as many of partition",
    )
    parser.add_argument(
        "--actor-crashes",
        type=int,
        default=defaults.actor_crashes,
        help="conversation/connection actor crashes at random times",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--no-removal",
        dest="removal",
        action="store_false",
        help="leave out the member removal mid-run",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated fault kinds among {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not kinds or set(kinds) - set(FAULT_KINDS):
        parser.error(f"--kinds: choose among {', '.join(FAULT_KINDS)}")
    if args.clients < 2 or args.rate <= 0 or args.duration <= 0 or args.outage_s < 0:
        parser.error("--clients >= 2, --rate and --duration > 0, --outage-s >= 0")
    if args.random_faults < 0 or args.actor_crashes < 0 or args.net_fault_s <= 0:
        parser.error("--random-faults, --actor-crashes >= 0; --net-fault-s > 0")
    scenario = ChaosScenario(
        duration=args.duration,
        outage_s=args.outage_s,
        restart_after=args.restart_after,
        clients=args.clients,
        rate=args.rate,
        random_faults=args.random_faults,
        net_fault_s=args.net_fault_s,
        actor_crashes=args.actor_crashes,
        seed=args.seed,
        removal=args.removal,
        kinds=kinds,
    )
    command = "whispr chaos " + " ".join(sys.argv[2:] if argv is None else argv)
    report = run(scenario, args.out, command.strip())
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
