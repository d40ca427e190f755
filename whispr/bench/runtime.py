"""Runtime benchmark: the asyncio actors against pykka's threading actors.

Measures, for :class:`supervisors.AsyncioActor` and ``pykka.ThreadingActor``
running the same handler:

``start_10k_s``      start the actors until every one is ready
``tell_per_s``       tells delivered round robin, until every actor handled its share
``ask_p50_us``/``ask_p99_us``  sequential ask round trips
``restart_p50_ms``   crash to replacement ready, under a one_for_one ``Supervisor``;
                     the supervision machinery alone (logging disabled), and as
                     ``restart_logged_p50_ms`` with the crash report (a formatted
                     traceback) written as a node writes it, which costs more
                     than the restart itself
``bytes_per_actor``  resident memory per idle actor

Each kind runs in a fresh subprocess so that threads, memory and garbage of
one never weigh on the other. The asyncio kind runs on uvloop, as a node does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pykka

from supervisors import AsyncioActor, ChildSpec, Supervisor, ThreadActor
from whispr.bench.report import machine, markdown_table, plot_cdf, write_json, write_text

__all__ = ["TARGETS", "measure_asyncio", "measure_threading", "run_suite"]

TARGETS: dict[str, tuple[str, float]] = {
    "start_10k_s": ("<", 0.5),
    "tell_per_s": (">=", 100_000),
    "ask_p50_us": ("<", 20),
    "restart_p50_ms": ("<", 1),
    "bytes_per_actor": ("<=", 4096),
}


class _Counter:
    """The handler both kinds run: count tells, answer asks, crash on request."""

    count: int

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash requested by the benchmark")
        if message == "count":
            return self.count
        self.count += 1
        return message


class AsyncioCounter(_Counter, AsyncioActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0


class ThreadingCounter(_Counter, pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.count = 0


class SupervisedThreadCounter(_Counter, ThreadActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0


def _progress(text: str) -> None:
    """A progress line on stderr (stdout carries the JSON result)."""
    print(f"[runtime] {text}", file=sys.stderr, flush=True)


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _restarts_both_ways(
    child: Callable[[], pykka.ActorRef[Any]], restarts: int
) -> tuple[list[float], list[float]]:
    """Restart latencies without logging, then with crash reports written out."""
    logging.disable(logging.CRITICAL)
    try:
        bare = await _restart_samples(child, restarts)
    finally:
        logging.disable(logging.NOTSET)
    handler = _FormatOnly()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logged = await _restart_samples(child, restarts)
    finally:
        root.removeHandler(handler)
    return bare, logged


class _FormatOnly(logging.Handler):
    """Formats every record, traceback included, as a node's log handler would; writes nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


async def _restart_samples(child: Callable[[], pykka.ActorRef[Any]], restarts: int) -> list[float]:
    supervisor = Supervisor.start(
        [ChildSpec(id="child", start=child)], max_restarts=restarts * 10, max_seconds=1.0
    )
    await supervisor.started()
    proxy = supervisor.proxy()
    samples = []
    for _ in range(restarts):
        (info,) = await proxy.which_children()
        old = info.ref
        began = time.perf_counter()
        old.tell("crash")
        while True:
            (info,) = await proxy.which_children()
            if info.ref is not None and info.ref is not old:
                await info.ref.started()
                break
            await asyncio.sleep(0)
        samples.append(time.perf_counter() - began)
    supervisor.stop(block=False)
    await supervisor.wait_exit()
    return samples


async def _measure_asyncio(actors: int, tells: int, asks: int, restarts: int) -> dict[str, Any]:
    before = _rss()
    _progress(f"starting {actors:,} asyncio actors...")
    began = time.perf_counter()
    refs = [AsyncioCounter.start() for _ in range(actors)]
    for ref in refs:
        await ref.started()
    start_s = time.perf_counter() - began
    bytes_per_actor = (_rss() - before) / actors

    _progress(f"{tells:,} tells round robin to the asyncio actors...")
    began = time.perf_counter()
    for n in range(tells):
        refs[n % actors].tell(n)
    counts = [await ref.ask("count", block=False) for ref in refs]
    tell_s = time.perf_counter() - began
    assert sum(counts) == tells, "every tell is handled exactly once"

    _progress(f"{asks:,} sequential asks to an asyncio actor...")
    target = refs[0]
    for n in range(500):
        await target.ask(n, block=False)
    ask_samples = []
    for n in range(asks):
        sent = time.perf_counter()
        await target.ask(n, block=False)
        ask_samples.append(time.perf_counter() - sent)

    _progress(f"{restarts} restarts of an asyncio actor under a Supervisor, twice...")
    restart = await _restarts_both_ways(AsyncioCounter.start, restarts)
    for ref in refs:
        ref.stop(block=False)
    for ref in refs:
        await ref.wait_exit()
    return _figures(actors, start_s, tells, tell_s, ask_samples, restart, bytes_per_actor)


def measure_asyncio(
    actors: int = 10_000, tells: int = 200_000, asks: int = 5_000, restarts: int = 200
) -> dict[str, Any]:
    """The asyncio actors' figures, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        result = asyncio.run(_measure_asyncio(actors, tells, asks, restarts))
        result["loop"] = "asyncio"
        return result
    result = uvloop.run(_measure_asyncio(actors, tells, asks, restarts))
    result["loop"] = "uvloop"
    return result


def measure_threading(
    actors: int = 10_000, tells: int = 20_000, asks: int = 5_000, restarts: int = 200
) -> dict[str, Any]:
    """pykka's threading actors, the same handler, from a plain thread."""
    before = _rss()
    _progress(f"starting {actors:,} threading actors...")
    began = time.perf_counter()
    refs = [ThreadingCounter.start() for _ in range(actors)]
    for ref in refs:
        ref.ask("count")
    start_s = time.perf_counter() - began
    bytes_per_actor = (_rss() - before) / actors

    _progress(f"{tells:,} tells round robin to the threading actors...")
    began = time.perf_counter()
    for n in range(tells):
        refs[n % actors].tell(n)
    counts = [int(ref.ask("count", block=True)) for ref in refs]
    tell_s = time.perf_counter() - began
    assert sum(counts) == tells, "every tell is handled exactly once"

    _progress(f"{asks:,} sequential asks to a threading actor...")
    target = refs[0]
    for n in range(500):
        target.ask(n)
    ask_samples = []
    for n in range(asks):
        sent = time.perf_counter()
        target.ask(n)
        ask_samples.append(time.perf_counter() - sent)
    _progress(f"{restarts} restarts of a ThreadActor under a Supervisor, twice...")
    restart = asyncio.run(_restarts_both_ways(SupervisedThreadCounter.start, restarts))
    for ref in refs:
        ref.stop(block=False)
    result = _figures(actors, start_s, tells, tell_s, ask_samples, restart, bytes_per_actor)
    result["loop"] = "threads"
    return result


def _figures(
    actors: int,
    start_s: float,
    tells: int,
    tell_s: float,
    ask_samples: list[float],
    restarts: tuple[list[float], list[float]],
    bytes_per_actor: float,
) -> dict[str, Any]:
    return {
        "actors": actors,
        "start_10k_s": start_s * 10_000 / actors,
        "start_s": start_s,
        "tells": tells,
        "tell_per_s": tells / tell_s,
        "ask_p50_us": _percentile(ask_samples, 0.50) * 1e6,
        "ask_p99_us": _percentile(ask_samples, 0.99) * 1e6,
        "restart_p50_ms": statistics.median(restarts[0]) * 1e3,
        "restart_p99_ms": _percentile(restarts[0], 0.99) * 1e3,
        "restart_logged_p50_ms": statistics.median(restarts[1]) * 1e3,
        "bytes_per_actor": bytes_per_actor,
        "ask_samples_us": [s * 1e6 for s in ask_samples],
    }


def _met(value: float, rule: tuple[str, float]) -> bool:
    operator, bound = rule
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound}[operator]


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """Measure both kinds in subprocesses and write runtime.json, .md and .png."""
    sizes = {
        "asyncio": ["--actors", "10000", "--tells", "200000"],
        "threading": ["--actors", "1000" if quick else "10000", "--tells", "20000"],
    }
    results: dict[str, dict[str, Any]] = {}
    for kind, size in sizes.items():
        print(f"[runtime] measuring {kind} actors in a fresh process...", flush=True)
        # stdout carries the JSON; stderr (progress lines) goes straight through.
        completed = subprocess.run(
            [sys.executable, "-m", "whispr.bench.runtime", "--kind", kind, "--json", *size],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        results[kind] = json.loads(completed.stdout)
        print(
            f"[runtime] {kind}: start {results[kind]['start_10k_s']:.2f} s/10k, "
            f"{results[kind]['tell_per_s']:,.0f} tells/s, "
            f"ask p50 {results[kind]['ask_p50_us']:.1f} us",
            flush=True,
        )
    samples = {kind: r.pop("ask_samples_us") for kind, r in results.items()}
    report: dict[str, Any] = {
        **results,
        "targets": {name: f"{op} {bound:g}" for name, (op, bound) in TARGETS.items()},
        "machine": machine(),
        "loop": results["asyncio"]["loop"],
    }
    write_json(out / "runtime.json", report)
    rows = [
        [
            name,
            results["asyncio"][name],
            results["threading"][name],
            f"{op} {bound:g}",
            _met(results["asyncio"][name], (op, bound)),
        ]
        for name, (op, bound) in TARGETS.items()
    ]
    rows.insert(
        0, ["actors", results["asyncio"]["actors"], results["threading"]["actors"], "", None]
    )
    for position, extra in ((4, "ask_p99_us"), (6, "restart_logged_p50_ms")):
        rows.insert(
            position, [extra, results["asyncio"][extra], results["threading"][extra], "", None]
        )
    command = "'runtime --quick'" if quick else "runtime"
    text = (
        "# Actor runtime: asyncio actors vs pykka threading actors\n\n"
        f"Machine: {report['machine']['cpus']} CPUs, Python {report['machine']['python']}; "
        f"asyncio actors on {report['loop']}; threading measured with "
        f"{results['threading']['actors']:,} actors (start time scaled to 10k).\n\n"
        + markdown_table(["figure", "asyncio", "threading", "asyncio target", "met"], rows)
        + f"\nReproduce: `make bench BENCH_ARGS={command}`.\n"
    )
    write_text(out / "runtime.md", text)
    plot_cdf(
        out / "runtime.png",
        {f"{kind} ask": values for kind, values in samples.items()},
        title="ask() round trip",
        xlabel="microseconds",
    )
    print(text, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="measure one kind of actor (internal)")
    parser.add_argument("--kind", choices=["asyncio", "threading"], required=True)
    parser.add_argument("--actors", type=int, default=10_000)
    parser.add_argument("--tells", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--restarts", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    measure = measure_asyncio if args.kind == "asyncio" else measure_threading
    result = measure(args.actors, args.tells, args.asks, args.restarts)
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result.items():
        if name != "ask_samples_us":
            print(f"{name:>22}  {value}")


if __name__ == "__main__":
    main()
