"""Runtime benchmark: ``AsyncioActor`` against pykka's ``ThreadingActor``.

Both kinds run the same handler (:class:`_Counter`). Figures, per kind:

``start_10k_s``
    start the actors and wait until every one is ready: ``await ref.started()``
    for asyncio actors, a first message handled for threading actors; scaled
    to 10,000 when fewer were started (``actors`` says how many).
``tell_per_s``
    tells sent round robin to all the actors, timed until every actor has
    handled its share (each counts its tells; one ``ask`` per actor, sent after
    the tells, collects the counts, and the last answer ends the clock).
``ask_p50_us``, ``ask_p99_us``
    sequential ``ask`` round trips to one actor, after a warm-up: from a
    coroutine for asyncio actors, from the main thread for threading actors.
``restart_p50_ms``, ``restart_p99_ms``
    under a one_for_one :class:`supervisors.Supervisor`: from telling the
    child a message that crashes it to the supervisor's ``which_children()``
    showing a new ref whose ``started()`` has completed. The threading side
    supervises :class:`supervisors.ThreadActor` children (a
    ``pykka.ThreadingActor`` subclass), since plain pykka actors report no
    exits. Measured with logging disabled (the supervision machinery alone);
    ``restart_logged_p50_ms`` repeats it with every log record formatted,
    crash traceback included, as a node's log handler would.
``bytes_per_actor``
    resident memory (RSS) grown by starting the actors, after ``gc.collect()``,
    divided by their number: measured first, before anything else ran.

Each kind runs in a fresh subprocess (``python -m whispr.bench.runtime
--kind ...``, printing its figures as JSON), so that threads, memory and
garbage of one never weigh on the other. Asyncio actors run on uvloop when it
is installed (``loop`` in the results), as a node does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import psutil
import pykka

from supervisors import AsyncioActor, ChildSpec, Ref, Supervisor, ThreadActor
from whispr.bench.report import (
    Target,
    machine,
    markdown_table,
    percentile,
    plot_cdf,
    write_json,
    write_text,
)

__all__ = ["TARGETS", "Sizes", "measure_asyncio", "measure_threading", "run_suite"]

Kind = Literal["asyncio", "threading"]
LoopChoice = Literal["auto", "asyncio", "uvloop"]

#: The asyncio actors' targets (docs/design.md, section 3); threading is the baseline.
TARGETS: dict[str, Target] = {
    "start_10k_s": Target("<", 0.5),
    "tell_per_s": Target(">=", 100_000),
    "ask_p50_us": Target("<", 20),
    "restart_p50_ms": Target("<", 1),
    "bytes_per_actor": Target("<=", 4096),
}

#: Figures shown in runtime.md, in order; the ones in TARGETS get a target column.
SHOWN = (
    "start_10k_s",
    "tell_per_s",
    "ask_p50_us",
    "ask_p99_us",
    "restart_p50_ms",
    "restart_p99_ms",
    "restart_logged_p50_ms",
    "bytes_per_actor",
)

#: Bounds on one kind's subprocess, so that a wedged run fails instead of hanging `make bench`.
SUBPROCESS_TIMEOUT_S = 240.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work one kind's run does."""

    actors: int
    tells: int
    asks: int = 5_000
    warmup: int = 500
    restarts: int = 200

    def arguments(self) -> list[str]:
        """The same sizes as command-line arguments for the subprocess."""
        return [f"--{name}={value}" for name, value in asdict(self).items()]


def sizes_for(kind: Kind, quick: bool) -> Sizes:
    """The sizes a suite run uses.

    Threading actors are measured at 10,000 in a full run (20 to 30 s just to
    start them on 2 cores) and at 1,000 with ``--quick``. They get fewer tells:
    one per actor at 10,000, where they handle a few hundred a second (more
    would take minutes and show nothing new).
    """
    if kind == "asyncio":
        return Sizes(actors=10_000, tells=200_000, restarts=100 if quick else 200)
    if quick:
        return Sizes(actors=1_000, tells=10_000, asks=2_000, restarts=50)
    return Sizes(actors=10_000, tells=10_000, restarts=100)


# -- the actors -------------------------------------------------------------------------


class _Counter:
    """The handler every kind runs: count tells, answer asks, crash on request."""

    count: int

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            msg = "crash requested by the benchmark"
            raise RuntimeError(msg)
        if message == "count":
            return self.count
        self.count += 1
        return message


class AsyncioCounter(_Counter, AsyncioActor):
    """The handler on the asyncio runtime."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0


class ThreadingCounter(_Counter, pykka.ThreadingActor):
    """The handler on a plain pykka threading actor."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.count = 0


class SupervisedThreadCounter(_Counter, ThreadActor):
    """The handler on the runtime's supervisable threading actor."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0


# -- measuring --------------------------------------------------------------------------


def _progress(text: str) -> None:
    """A progress line on stderr (the subprocess's stdout carries its JSON)."""
    print(f"[runtime]   {text}", file=sys.stderr, flush=True)


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


class _Replacements:
    """The supervised child's start function; hands the benchmark each new ref.

    Waiting on this future, rather than polling ``which_children()``, keeps the
    measuring coroutine off the CPU while the restart happens: polling would
    compete with a ``ThreadActor``'s thread for the GIL and measure that.
    """

    def __init__(self, start: Callable[[], Ref[Any]]) -> None:
        self._start = start
        self.next: asyncio.Future[Ref[Any]] | None = None

    def __call__(self) -> Ref[Any]:
        ref = self._start()
        waiter = self.next
        if waiter is not None and not waiter.done():
            waiter.set_result(ref)
        return ref


async def _restart_samples(start: Callable[[], Ref[Any]], restarts: int) -> list[float]:
    replacements = _Replacements(start)
    supervisor = Supervisor.start(
        [ChildSpec(id="child", start=replacements)],
        max_restarts=restarts * 10,
        max_seconds=1.0,
    )
    await supervisor.started()
    proxy = supervisor.proxy()
    (info,) = await proxy.which_children()
    child: Ref[Any] = info.ref
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(restarts):
        replacements.next = loop.create_future()
        began = time.perf_counter()
        child.tell("crash")
        replacement = await replacements.next
        await replacement.started()
        (info,) = await proxy.which_children()
        elapsed = time.perf_counter() - began
        if info.ref is not replacement:
            msg = "the supervisor does not list the replacement it started"
            raise RuntimeError(msg)
        samples.append(elapsed)
        child = replacement
    supervisor.stop(block=False)
    await supervisor.wait_exit()
    return samples


class _FormatOnly(logging.Handler):
    """Formats every record, traceback included, as a node's handler would; writes nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


async def _restarts(start: Callable[[], Ref[Any]], restarts: int) -> dict[str, Any]:
    """Restart latencies with logging disabled, then with every record formatted."""
    logging.disable(logging.CRITICAL)
    try:
        bare = await _restart_samples(start, restarts)
    finally:
        logging.disable(logging.NOTSET)
    handler = _FormatOnly()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logged = await _restart_samples(start, restarts)
    finally:
        root.removeHandler(handler)
    return {
        "restart_p50_ms": statistics.median(bare) * 1e3,
        "restart_p99_ms": percentile(bare, 0.99) * 1e3,
        "restart_logged_p50_ms": statistics.median(logged) * 1e3,
        "restart_samples_ms": [s * 1e3 for s in bare],
    }


def _latencies(samples: list[float]) -> dict[str, float | list[float]]:
    return {
        "ask_p50_us": percentile(samples, 0.50) * 1e6,
        "ask_p90_us": percentile(samples, 0.90) * 1e6,
        "ask_p99_us": percentile(samples, 0.99) * 1e6,
        "ask_samples_us": [s * 1e6 for s in samples],
    }


async def _measure_asyncio(sizes: Sizes) -> dict[str, Any]:
    figures: dict[str, Any] = {"actors": sizes.actors, "tells": sizes.tells}
    before = _rss()
    _progress(f"starting {sizes.actors:,} asyncio actors...")
    began = time.perf_counter()
    refs = [AsyncioCounter.start() for _ in range(sizes.actors)]
    for ref in refs:
        await ref.started()
    elapsed = time.perf_counter() - began
    figures["start_s"] = elapsed
    figures["start_10k_s"] = elapsed * 10_000 / sizes.actors
    figures["bytes_per_actor"] = (_rss() - before) / sizes.actors

    _progress(f"{sizes.tells:,} tells round robin...")
    began = time.perf_counter()
    for n in range(sizes.tells):
        refs[n % sizes.actors].tell(n)
    counts = [ref.ask("count", block=False) for ref in refs]
    handled = [await count for count in counts]
    figures["tell_per_s"] = sizes.tells / (time.perf_counter() - began)
    if sum(handled) != sizes.tells:
        msg = f"{sum(handled):,} tells handled, {sizes.tells:,} sent"
        raise RuntimeError(msg)

    _progress(f"{sizes.asks:,} sequential asks from a coroutine...")
    target = refs[0]
    for n in range(sizes.warmup):
        await target.ask(n, block=False)
    samples = []
    for n in range(sizes.asks):
        sent = time.perf_counter()
        await target.ask(n, block=False)
        samples.append(time.perf_counter() - sent)
    figures.update(_latencies(samples))

    _progress(f"{sizes.restarts} restarts under a Supervisor, without and with logging...")
    figures.update(await _restarts(AsyncioCounter.start, sizes.restarts))
    for ref in refs:
        ref.stop(block=False)
    for ref in refs:
        await ref.wait_exit()
    return figures


def _run_on_loop(main: Coroutine[Any, Any, dict[str, Any]], loop: LoopChoice) -> dict[str, Any]:
    """Run ``main`` on uvloop (unless ``loop`` says asyncio); its result gains ``loop``."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
            if loop == "uvloop":
                raise
        else:
            result: dict[str, Any] = uvloop.run(main)
            result["loop"] = f"uvloop {importlib.metadata.version('uvloop')}"
            return result
    result = asyncio.run(main)
    result["loop"] = "asyncio"
    return result


def measure_asyncio(sizes: Sizes, loop: LoopChoice = "auto") -> dict[str, Any]:
    """The asyncio actors' figures, on uvloop if it is installed (or as ``loop`` says)."""
    return _run_on_loop(_measure_asyncio(sizes), loop)


def measure_threading(sizes: Sizes, loop: LoopChoice = "auto") -> dict[str, Any]:
    """pykka's threading actors, the same handler, driven from the main thread.

    The restarts run under a ``Supervisor`` on an event loop, as a node's
    would: ``loop`` picks it, as for :func:`measure_asyncio`.
    """
    figures: dict[str, Any] = {"actors": sizes.actors, "tells": sizes.tells, "loop": "threads"}
    before = _rss()
    _progress(f"starting {sizes.actors:,} threading actors...")
    began = time.perf_counter()
    refs = [ThreadingCounter.start() for _ in range(sizes.actors)]
    firsts = [ref.ask("count", block=False) for ref in refs]
    for first in firsts:
        first.get()
    elapsed = time.perf_counter() - began
    figures["start_s"] = elapsed
    figures["start_10k_s"] = elapsed * 10_000 / sizes.actors
    figures["bytes_per_actor"] = (_rss() - before) / sizes.actors

    _progress(f"{sizes.tells:,} tells round robin...")
    began = time.perf_counter()
    for n in range(sizes.tells):
        refs[n % sizes.actors].tell(n)
    counts = [ref.ask("count", block=False) for ref in refs]
    handled = [int(count.get()) for count in counts]
    figures["tell_per_s"] = sizes.tells / (time.perf_counter() - began)
    if sum(handled) != sizes.tells:
        msg = f"{sum(handled):,} tells handled, {sizes.tells:,} sent"
        raise RuntimeError(msg)

    _progress(f"{sizes.asks:,} sequential asks from the main thread...")
    target = refs[0]
    for n in range(sizes.warmup):
        target.ask(n)
    samples = []
    for n in range(sizes.asks):
        sent = time.perf_counter()
        target.ask(n)
        samples.append(time.perf_counter() - sent)
    figures.update(_latencies(samples))

    _progress(
        f"{sizes.restarts} ThreadActor restarts under a Supervisor, without and with logging..."
    )
    restarts = _run_on_loop(_restarts(SupervisedThreadCounter.start, sizes.restarts), loop)
    figures["supervisor_loop"] = restarts.pop("loop")
    figures.update(restarts)
    # The actors' threads are daemons: the process ends without stopping
    # ten thousand of them one by one.
    return figures


# -- the suite --------------------------------------------------------------------------


def _measure_in_subprocess(kind: Kind, sizes: Sizes) -> dict[str, Any]:
    # stdout carries the JSON; stderr (the progress lines) goes straight through.
    completed = subprocess.run(
        [sys.executable, "-m", "whispr.bench.runtime", f"--kind={kind}", *sizes.arguments()],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    figures: dict[str, Any] = json.loads(completed.stdout)
    return figures


def _markdown(results: dict[Kind, dict[str, Any]], report: dict[str, Any], quick: bool) -> str:
    asyncio_figures, threading_figures = results["asyncio"], results["threading"]
    rows: list[list[object]] = [
        ["actors", asyncio_figures["actors"], threading_figures["actors"], None, None],
        ["tells", asyncio_figures["tells"], threading_figures["tells"], None, None],
    ]
    for name in SHOWN:
        target = TARGETS.get(name)
        rows.append(
            [
                f"`{name}`",
                asyncio_figures[name],
                threading_figures[name],
                None if target is None else str(target),
                None if target is None else target.met(asyncio_figures[name]),
            ]
        )
    met = sum(target.met(asyncio_figures[name]) for name, target in TARGETS.items())
    command = "python -m whispr.bench runtime" + (" --quick" if quick else "")
    make_args = "'runtime --quick'" if quick else "runtime"
    info = report["machine"]
    return (
        "# Actor runtime: `AsyncioActor` vs `pykka.ThreadingActor`\n\n"
        f"{info['cpus']} CPUs, {info['implementation']} {info['python']}, {info['platform']}; "
        f"asyncio actors on {report['loop']}. Same handler for both kinds, each kind in a "
        "fresh process. Targets are the asyncio actors' (docs/design.md, section 3): "
        f"{met} of {len(TARGETS)} met.\n\n"
        + markdown_table(["figure", "asyncio", "threading", "target", "met?"], rows)
        + "\n"
        f"- Threading: {threading_figures['actors']:,} actors"
        + (" (`--quick`: start time scaled to 10,000)" if quick else "")
        + f" and {threading_figures['tells']:,} tells, fewer than asyncio: at its rate "
        "more would take minutes.\n"
        "- `restart_*`: from telling the child a crashing message to the supervisor's "
        "`which_children()` listing a replacement whose `started()` is done; one_for_one "
        "`Supervisor`, logging disabled; threading supervises `ThreadActor` children. "
        "Measured while the kind's idle actors are alive (each exit unregisters from pykka's "
        "`ActorRegistry`, which the supervisors library indexes by ref so that this does "
        "not grow with the number of live actors). "
        "`restart_logged_p50_ms`: the same with every log record formatted (the crash "
        "report's traceback), as a node logs it.\n"
        "- `bytes_per_actor`: RSS growth after starting the idle actors, after "
        "`gc.collect()`, divided by their number.\n"
        "- Ask latency distribution: `runtime.png`.\n\n"
        f"Reproduce: `{command}` (or `make bench BENCH_ARGS={make_args}`).\n"
    )


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """Measure both kinds, each in a fresh subprocess; write runtime.json, .md and .png."""
    results: dict[Kind, dict[str, Any]] = {}
    kinds: tuple[Kind, ...] = ("asyncio", "threading")
    for kind in kinds:
        sizes = sizes_for(kind, quick)
        print(
            f"[runtime] {kind}: {sizes.actors:,} actors, {sizes.tells:,} tells, "
            f"{sizes.asks:,} asks, {sizes.restarts} restarts, in a fresh process...",
            flush=True,
        )
        began = time.perf_counter()
        figures = _measure_in_subprocess(kind, sizes)
        results[kind] = figures
        print(
            f"[runtime] {kind} ({time.perf_counter() - began:.1f} s): "
            f"start {figures['start_10k_s']:.2f} s/10k, {figures['tell_per_s']:,.0f} tells/s, "
            f"ask p50 {figures['ask_p50_us']:.1f} us, restart p50 "
            f"{figures['restart_p50_ms']:.2f} ms, {figures['bytes_per_actor']:,.0f} B/actor",
            flush=True,
        )
    ask_samples = {kind: figures.pop("ask_samples_us") for kind, figures in results.items()}
    for figures in results.values():
        figures.pop("restart_samples_ms")
    report: dict[str, Any] = {
        "asyncio": results["asyncio"],
        "threading": results["threading"],
        "targets": {name: str(target) for name, target in TARGETS.items()},
        "met": {name: target.met(results["asyncio"][name]) for name, target in TARGETS.items()},
        "machine": machine(),
        "loop": results["asyncio"]["loop"],
        "quick": quick,
    }
    write_json(out / "runtime.json", report)
    text = _markdown(results, report, quick)
    write_text(out / "runtime.md", text)
    plot_cdf(
        out / "runtime.png",
        {
            f"AsyncioActor ({report['loop']})": ask_samples["asyncio"],
            "pykka.ThreadingActor": ask_samples["threading"],
        },
        title="ask() round trip, sequential, one actor",
        xlabel="microseconds (log scale)",
        marks={"asyncio p50 target": TARGETS["ask_p50_us"].bound},
    )
    print(text, flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    """Measure one kind in this process and print its figures as JSON (the suite's subprocess)."""
    parser = argparse.ArgumentParser(
        prog="python -m whispr.bench.runtime",
        description="measure one kind of actor and print the figures as JSON (internal)",
    )
    parser.add_argument("--kind", choices=["asyncio", "threading"], required=True)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    defaults = sizes_for("asyncio", quick=False)
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name}", type=int, default=value)
    args = parser.parse_args(argv)
    sizes = Sizes(
        actors=args.actors,
        tells=args.tells,
        asks=args.asks,
        warmup=args.warmup,
        restarts=args.restarts,
    )
    if args.kind == "asyncio":
        figures = measure_asyncio(sizes, args.loop)
    else:
        figures = measure_threading(sizes, args.loop)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
