"""Soak run: steady traffic with reconnect churn for a long time; do the node's resources stay flat?

``whispr soak`` (``make soak``): real nodes (``whispr serve``, one by default, ``--nodes 2``),
on PostgreSQL and Redis when they answer (as ``whispr bench`` chooses), and the bench's own
clients (:class:`~whispr.bench.wsclient.BenchClient`), grouped into conversations of a few
members. For ``--duration`` seconds (30 minutes by default) they send ``--rate`` messages per
second in total, while every ``--churn-every`` seconds the next ``--churn-fraction`` of the
clients disconnects, stays away ``--away`` seconds and reconnects with ``last_seq``: connection
actors, channels and stream subscriptions are created and torn down all the time, the paths
where a leak hides.

Every ``--sample-every`` seconds, from outside the nodes (:mod:`whispr.bench.sampler`): their
memory, file descriptors, threads, connections, conversation actors, and their PostgreSQL
and Redis connections. Each series gets a slope over the run's second half and a verdict
(:mod:`whispr.bench.trend`). At the end every client is back and must hold every message that
was acknowledged in its conversation, once each: nothing acknowledged is missing.

Writes ``soak.json``, ``soak.md`` and ``soak.png`` (the series over time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from whispr.auth import issue_token
from whispr.bench.gateway import (
    _bounded,
    _Client,
    _create_conversations,
    _services_env,
    _start_nodes,
    node_for,
)
from whispr.bench.report import machine, markdown_table, plot_series, write_json, write_text
from whispr.bench.sampler import METRICS, Sampler
from whispr.bench.trend import Tolerance, judge
from whispr.bench.wsclient import BenchClient
from whispr.client import ServerEvent
from whispr.config import DEV_JWT_SECRET

__all__ = ["TOLERANCES", "SoakScenario", "main", "run"]

MIB = 1024 * 1024

#: What each series may drift over the run (its second half's slope times the run's length)
#: and still be flat. Memory: 5 % of its mean or 16 MiB, whichever is larger. CPython's
#: allocator keeps freed arenas and a node's caches settle over minutes, so a few percent is
#: noise, while a leak of a few hundred bytes per connection churned (thousands per minute)
#: crosses it within the run. Counts of things held (descriptors, connections, sessions,
#: actors) are meant to be constant under steady load: the absolute bound is the noise a
#: sample catches mid-churn (sockets closing, a pool growing for a burst), and the relative
#: 5 % keeps a large count's churn batch (clients away at the moment of a sample) from
#: reading as a trend. Threads: a pool's few workers come and go, nothing more.
TOLERANCES: dict[str, Tolerance] = {
    "rss_bytes": Tolerance(0.05, 16 * MIB),
    "open_fds": Tolerance(0.05, 8),
    "threads": Tolerance(0.0, 2),
    "connections": Tolerance(0.05, 8),
    "conversation_actors": Tolerance(0.05, 2),
    "postgres_connections": Tolerance(0.0, 2),
    "redis_connections": Tolerance(0.0, 2),
}


@dataclass(frozen=True)
class SoakScenario:
    """One soak run's shape."""

    connections: int = 200
    conversation_size: int = 4
    rate: float = 50.0
    duration: float = 1800.0
    nodes: int = 1
    churn_fraction: float = 0.1
    churn_every: float = 10.0
    away: float = 1.0
    sample_every: float = 5.0


@dataclass(eq=False)
class _SoakClient(_Client):
    """A bench client that also knows which seqs it got: to find a hole or a duplicate."""

    #: Every seq up to here arrived; ``above``: those that arrived beyond it.
    below: int = 0
    above: set[int] = field(default_factory=set)
    duplicates: int = 0
    joined: bool = False
    #: Leaving: no new push; ``inflight``: pushes not yet answered, awaited before closing.
    leaving: bool = False
    inflight: set[asyncio.Future[Any]] = field(default_factory=set)

    def on_event(self, event: ServerEvent) -> None:
        super().on_event(event)
        if event.event != "new_message":
            return
        seq = int(event.payload["message"]["seq"])
        if seq <= self.below or seq in self.above:
            self.duplicates += 1
            return
        self.above.add(seq)
        while self.below + 1 in self.above:
            self.below += 1
            self.above.discard(self.below)

    def holds(self, seq: int) -> bool:
        """Whether message ``seq`` of its conversation reached this client."""
        return seq <= self.below or seq in self.above

    async def connect(self, params: dict[str, Any] | None = None) -> None:
        # As _Client.connect, keeping the first join's head: where this client's record starts.
        if self.token is None:
            self.token = issue_token(
                self.user, secret=DEV_JWT_SECRET, device_id="soak", ttl_s=86_400
            )
        self.client = await BenchClient.connect(self.url, self.token, self.on_event)
        reply = await self.client.join(self.topic, params or {})
        if not self.joined:
            self.joined = True
            self.below = self.last_seq = max(self.last_seq, int(reply.get("last_seq", 0)))
        self.leaving = False


@dataclass
class _Tally:
    """What the traffic did: sends answered, refused, and the seqs acknowledged per topic."""

    acked: int = 0
    failed: int = 0
    first_failure: str | None = None
    acked_seqs: dict[str, list[int]] = field(default_factory=dict)
    reconnects: int = 0
    reconnect_failures: int = 0


async def _send(
    clients: list[_SoakClient], rate: float, stop: asyncio.Event, tally: _Tally
) -> None:
    """``rate`` msgs/s round robin over the clients present, until ``stop``."""
    began = time.monotonic()
    count = sent = 0

    def answered(client: _SoakClient, future: asyncio.Future[Any]) -> None:
        client.inflight.discard(future)
        if future.cancelled() or future.exception() is not None:
            tally.failed += 1
            if tally.first_failure is None:
                tally.first_failure = repr(None if future.cancelled() else future.exception())
            return
        tally.acked += 1
        tally.acked_seqs.setdefault(client.topic, []).append(int(future.result()["seq"]))

    while not stop.is_set():
        due = int(rate * (time.monotonic() - began))
        while sent < due:
            sent += 1
            # The next client present (one away misses its turn); none present: a slot lost.
            for _ in range(len(clients)):
                client = clients[count % len(clients)]
                count += 1
                if client.client is not None and not client.leaving:
                    break
            else:
                continue
            assert client.client is not None
            payload = {"client_id": f"{client.user}-{count}", "content": "x" * 64}
            future = client.client.push_nowait(client.topic, "send_message", payload)
            client.inflight.add(future)
            future.add_done_callback(functools.partial(answered, client))
        await asyncio.sleep(0.01)


async def _leave(client: _SoakClient) -> None:
    """Stop pushing, let what is in flight be answered, then disconnect."""
    client.leaving = True
    if client.inflight:
        await asyncio.wait(list(client.inflight), timeout=10)
    await client.close()


async def _back(client: _SoakClient, tally: _Tally) -> None:
    try:
        await client.connect({"last_seq": client.last_seq})
    except Exception:
        tally.reconnect_failures += 1
        await client.close()
    else:
        tally.reconnects += 1


async def _churn(
    clients: list[_SoakClient],
    scenario: SoakScenario,
    stop: asyncio.Event,
    tally: _Tally,
    present: asyncio.Event,
) -> None:
    """Every ``churn_every`` s the next batch leaves, stays away ``away`` s, comes back.

    ``present`` is clear while a batch is away: samples wait for it, so that a count of
    connections or descriptors is the steady one, not whatever share of a batch happened to be
    away at that instant (noise that would hide a leak of a few, or fake one).
    """
    batch = max(1, round(len(clients) * scenario.churn_fraction))
    start = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), scenario.churn_every)
            return
        away = [clients[(start + i) % len(clients)] for i in range(batch)]
        start = (start + batch) % len(clients)
        present.clear()
        try:
            await asyncio.gather(*(_leave(c) for c in away))
            await asyncio.sleep(scenario.away)
            await asyncio.gather(*(_back(c, tally) for c in away))
        finally:
            present.set()


async def _sample(
    sampler: Sampler, every: float, until: float, stop: asyncio.Event, present: asyncio.Event
) -> list[dict[str, Any]]:
    """A sample now and every ``every`` s until ``until`` (monotonic), with a progress bar.

    Each waits until no churn batch is away (``present``), for 30 s at most: a batch that
    takes longer to come back is itself a finding, sampled as it is.
    """
    samples: list[dict[str, Any]] = []
    began = time.monotonic()
    total = max(0.0, until - began)
    bar = tqdm(total=round(total), desc="soak", unit="s", file=sys.stderr)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(present.wait(), 30)
        now = time.monotonic()
        values = await sampler.sample()
        samples.append({"t_s": now - began, **values})
        bar.update(min(round(total), round(now - began)) - bar.n)
        bar.set_postfix(
            rss=f"{(values['rss_bytes'] or 0) / MIB:.0f}MiB",
            fds=values["open_fds"],
            conns=values["connections"],
            convs=values["conversation_actors"],
        )
        if now >= until:
            break
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))
    stop.set()
    bar.close()
    return samples


async def _settle(clients: list[_SoakClient], tally: _Tally, timeout: float = 30.0) -> None:
    """Bring every client back and wait until each holds its conversation's acknowledged seqs."""
    await asyncio.gather(*(_back(c, tally) for c in clients if c.client is None))
    newest = {topic: max(seqs) for topic, seqs in tally.acked_seqs.items()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.last_seq >= newest.get(c.topic, 0) for c in clients):
            return
        await asyncio.sleep(0.1)


def _missing(clients: list[_SoakClient], tally: _Tally) -> int:
    """Acknowledged messages that did not reach one of their conversation's members."""
    return sum(
        1
        for client in clients
        for seq in tally.acked_seqs.get(client.topic, [])
        if seq > 0 and not client.holds(seq)
    )


async def _measure(scenario: SoakScenario, workdir: Path) -> dict[str, Any]:
    env = await asyncio.to_thread(_services_env)
    count = scenario.nodes if env else 1
    print(
        f"[soak] starting {count} node(s) ({'PostgreSQL + Redis' if env else 'embedded SQLite'})",
        file=sys.stderr,
    )
    async with _start_nodes(count, env, workdir) as nodes:
        urls = nodes.urls
        size = max(2, scenario.conversation_size)
        run_id = uuid.uuid4().hex[:6]
        users = [f"soak-{run_id}-{n}" for n in range(scenario.connections)]
        groups = [users[i : i + size] for i in range(0, len(users), size)]
        conversations = await _create_conversations(urls[0], groups)
        latencies: list[float] = []
        clients = [
            _SoakClient(
                user, f"conversation:{cid}", urls[node_for(n, g, len(urls), "spread")], latencies
            )
            for g, (cid, group) in enumerate(zip(conversations, groups, strict=True))
            for n, user in enumerate(group)
        ]
        bar = tqdm(total=len(clients), desc="connect+join", unit="conn", file=sys.stderr)
        errors = [r for r in await _bounded([c.connect() for c in clients], 100, bar) if r]
        bar.close()
        if errors:
            raise SystemExit(f"[soak] {len(errors)} client(s) could not connect: {errors[0]!r}")
        sampler = Sampler(
            [node.process.pid for node in nodes.running],
            [node.port for node in nodes.running],
            env.get("WHISPR_DATABASE_URL"),
            env.get("WHISPR_REDIS_URL"),
        )
        await sampler.open()
        tally = _Tally()
        stop, present = asyncio.Event(), asyncio.Event()
        present.set()
        began = time.monotonic()
        try:
            traffic = [
                asyncio.create_task(_send(clients, scenario.rate, stop, tally)),
                asyncio.create_task(_churn(clients, scenario, stop, tally, present)),
            ]
            until = began + scenario.duration
            samples = await _sample(sampler, scenario.sample_every, until, stop, present)
            await asyncio.gather(*traffic)
            elapsed = time.monotonic() - began
            pending = [f for c in clients for f in c.inflight]
            if pending:
                await asyncio.wait(pending, timeout=30)
            await _settle(clients, tally)
        finally:
            await sampler.close()
        figures = {
            "nodes": len(urls),
            "store": "postgresql" if env.get("WHISPR_DATABASE_URL") else "sqlite",
            "duration_s": elapsed,
            "messages_acked": tally.acked,
            "messages_failed": tally.failed,
            "first_failure": tally.first_failure,
            "msgs_per_s": tally.acked / elapsed if elapsed else 0.0,
            "reconnects": tally.reconnects,
            "reconnect_failures": tally.reconnect_failures,
            "deliveries": sum(c.seen for c in clients),
            "duplicates": sum(c.duplicates for c in clients),
            "missing": _missing(clients, tally),
        }
        for client in clients:
            await client.close()
        return {"figures": figures, "samples": samples}


def _verdicts(samples: list[dict[str, Any]], duration: float) -> dict[str, dict[str, Any]]:
    verdicts: dict[str, dict[str, Any]] = {}
    for name in METRICS:
        measured = [(s["t_s"], float(s[name])) for s in samples if s.get(name) is not None]
        times = [t for t, _ in measured]
        values = [v for _, v in measured]
        verdicts[name] = judge(times, values, duration, TOLERANCES[name])
    return verdicts


def _markdown(report: dict[str, Any], command: str) -> str:
    scenario, figures, series = report["scenario"], report["figures"], report["series"]

    def shown(name: str, value: Any) -> Any:
        if value is None or name != "rss_bytes":
            return value
        return value / MIB

    rows = [
        [
            f"{name} (MiB)" if name == "rss_bytes" else name,
            shown(name, verdict.get("start")),
            shown(name, verdict.get("end")),
            shown(name, verdict.get("slope_per_hour")),
            shown(name, verdict.get("drift_over_run")),
            shown(name, verdict.get("tolerance")),
            verdict["flat"],
        ]
        for name, verdict in series.items()
        if verdict["samples"]
    ]
    minutes = figures["duration_s"] / 60
    return (
        "# Soak: steady traffic with reconnect churn; do the node's resources stay flat?\n\n"
        f"{scenario['connections']:,} clients in conversations of "
        f"{scenario['conversation_size']}, {scenario['rate']:g} msgs/s asked for "
        f"{minutes:.1f} min on {figures['nodes']} node(s) ({figures['store']}); every "
        f"{scenario['churn_every']:g} s {scenario['churn_fraction']:.0%} of the clients "
        f"leave for {scenario['away']:g} s and rejoin with `last_seq` "
        f"({figures['reconnects']:,} reconnects, {figures['reconnect_failures']:,} failed). "
        f"{figures['messages_acked']:,} messages acknowledged "
        f"({figures['msgs_per_s']:.1f}/s), {figures['messages_failed']:,} failed; "
        f"{figures['deliveries']:,} deliveries, {figures['missing']:,} acknowledged "
        f"messages missing at a member, {figures['duplicates']:,} duplicates.\n\n"
        "Slope: least squares over the run's second half (warm-up left out), per hour. "
        "Drift: that slope times the run's length. Flat: |drift| within the tolerance, "
        "the larger of a share of the series' mean and an absolute bound "
        "(`whispr/bench/soak.py`, `TOLERANCES`).\n\n"
        + markdown_table(
            ["series", "start", "end", "slope / h", "drift over run", "tolerance", "flat"], rows
        )
        + f"\nAll flat: {'yes' if report['flat'] else '**no**'}. Reproduce: `{command}`.\n"
    )


def run(scenario: SoakScenario, out: Path, command: str) -> dict[str, Any]:
    """Soak ``scenario``; write soak.json, soak.md and soak.png under ``out``."""
    import uvloop

    out.mkdir(parents=True, exist_ok=True)
    workdir = out / ".soak-work"
    workdir.mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (workdir / "bench.db").unlink()
    measured = uvloop.run(_measure(scenario, workdir))
    figures, samples = measured["figures"], measured["samples"]
    series = _verdicts(samples, figures["duration_s"])
    report = {
        "scenario": asdict(scenario),
        "figures": figures,
        "series": series,
        "samples": samples,
        "flat": all(v["flat"] is not False for v in series.values()),
        "tolerances": {name: str(tolerance) for name, tolerance in TOLERANCES.items()},
        "machine": machine(),
    }
    write_json(out / "soak.json", report)
    text = _markdown(report, command)
    write_text(out / "soak.md", text)
    plot_series(
        out / "soak.png",
        {
            f"{name} ({'MiB' if name == 'rss_bytes' else 'count'})": (
                [s["t_s"] / 60 for s in samples if s[name] is not None],
                [
                    s[name] / (MIB if name == "rss_bytes" else 1)
                    for s in samples
                    if s[name] is not None
                ],
            )
            for name in METRICS
        },
        title="Soak: node resources under steady traffic and reconnect churn",
        xlabel="minutes",
    )
    print(text, flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``whispr soak``: parse the scenario and run it; exit status 1 if a series is not flat."""
    parser = argparse.ArgumentParser(prog="whispr soak", description=__doc__.split("\n\n")[0])
    defaults = SoakScenario()
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--conversation-size", type=int, default=defaults.conversation_size)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="messages/s in total")
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    parser.add_argument("--nodes", type=int, default=defaults.nodes)
    parser.add_argument(
        "--churn-fraction",
        type=float,
        default=defaults.churn_fraction,
        help="share of the clients that leave and come back each round",
    )
    parser.add_argument(
        "--churn-every", type=float, default=defaults.churn_every, help="seconds between rounds"
    )
    parser.add_argument(
        "--away", type=float, default=defaults.away, help="seconds a leaving client stays away"
    )
    parser.add_argument("--sample-every", type=float, default=defaults.sample_every)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    for name in ("connections", "conversation_size", "nodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("rate", "duration", "churn_every", "sample_every"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.churn_fraction <= 1 or args.away < 0:
        parser.error("--churn-fraction must be within [0, 1] and --away not negative")
    scenario = SoakScenario(
        **{name: getattr(args, name) for name in asdict(defaults)},
    )
    command = "whispr soak " + " ".join(sys.argv[2:] if argv is None else argv)
    report = run(scenario, args.out, command.strip())
    return 0 if report["flat"] and not report["figures"]["missing"] else 1
