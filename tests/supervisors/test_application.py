"""run_until_signalled: a tree in its own process, stopped by SIGTERM within a deadline."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from supervisors import AsyncioActor, ChildSpec, Killed, Normal, Shutdown, Supervisor, stop_tree
from tests.supervisors._helpers import HangingStop, within, worker_spec, yield_loop

ROOT = Path(__file__).resolve().parents[2]
STARTUP = 20.0  # seconds for the interpreter to start and the tree to be up


async def run_tree(mode: str, deadline: float) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.supervisors._tree_app",
        mode,
        str(deadline),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "ready":
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP)
            assert line, "the program ended before it was ready"
            lines.append(line.decode().strip())
        process.send_signal(signal.SIGTERM)
        # The deadline is the requirement under test; the margin covers the
        # interpreter's own exit, not the tree's shutdown.
        out, _ = await asyncio.wait_for(process.communicate(), deadline + 5.0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode().split("\n")


def stops(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("stop ")]


async def test_sigterm_stops_the_tree_in_reverse_order_and_exits_zero() -> None:
    code, lines = await run_tree("clean", deadline=10.0)
    assert code == 0, lines
    assert stops(lines) == ["b", "d", "c", "inner", "a", "root"]
    assert "root exit shutdown" in lines
    assert "exit a shutdown" in lines


async def test_a_child_ignoring_shutdown_is_killed_at_the_deadline() -> None:
    code, lines = await run_tree("hang", deadline=1.0)
    assert code == 3, lines
    # b, then the inner supervisor, stop in order; stubborn never finishes,
    # so at the deadline it is killed along with what is left (a).
    assert stops(lines) == ["b", "d", "c", "inner"]
    assert "ignoring shutdown stubborn" in lines
    assert "exit stubborn killed (supervisor root exited: killed (shutdown deadline))" in lines
    assert "exit a killed (supervisor root exited: killed (shutdown deadline))" in lines
    assert "root exit killed (shutdown deadline)" in lines


async def test_stop_tree_in_process() -> None:
    log: list[tuple[str, str]] = []
    root = Supervisor.start([worker_spec("a", log), worker_spec("b", log)])
    await within(root.started())
    assert await within(stop_tree(root, deadline=5.0)) == Shutdown()
    assert log[-2:] == [("stop", "b"), ("stop", "a")]
    assert await within(stop_tree(root, deadline=5.0)) == Shutdown()  # already stopped


async def test_stop_tree_kills_at_the_deadline() -> None:
    log: list[tuple[str, str]] = []
    root = Supervisor.start(
        [
            worker_spec("a", log),
            ChildSpec("hang", lambda: HangingStop.start(log), shutdown="infinity"),
        ]
    )
    await within(root.started())
    hang = (await within(root.proxy().which_children()))[1].ref
    reason = await within(stop_tree(root, deadline=0.2))
    assert reason == Killed("shutdown deadline")
    assert isinstance(await within(hang.wait_exit(), 1.0), Killed)
    assert ("stop", "a") not in log


async def test_stop_tree_of_a_root_already_stopping_waits_for_it() -> None:
    entered = asyncio.Event()
    gate = asyncio.Event()

    class SlowStop(AsyncioActor):
        async def on_stop(self) -> None:
            entered.set()
            await gate.wait()

    root = SlowStop.start()
    await within(root.started())
    root.stop(block=False)
    await within(entered.wait())
    stopping = asyncio.ensure_future(stop_tree(root, deadline=5.0))
    await yield_loop()
    assert not stopping.done()
    gate.set()
    assert await within(stopping) == Normal()
