"""Monitors and links: who learns of an exit, with which reason."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from supervisors import (
    AsyncioActor,
    Crashed,
    ExitReason,
    ExitSignal,
    Killed,
    LinkedExit,
    Normal,
    Ref,
    Shutdown,
    request_shutdown,
)
from tests.supervisors._helpers import (
    BlockingThreadWorker,
    Boom,
    Worker,
    exit_child,
    within,
    yield_loop,
)


class Trapper(AsyncioActor):
    trap_exits = True

    def __init__(self) -> None:
        super().__init__()
        self.signals: list[ExitSignal] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ExitSignal):
            self.signals.append(message)
            return None
        return message

    def get_signals(self) -> list[ExitSignal]:
        return list(self.signals)


def _recorder() -> tuple[list[tuple[Ref[Any], ExitReason]], Any]:
    seen: list[tuple[Ref[Any], ExitReason]] = []
    return seen, lambda ref, reason: seen.append((ref, reason))


# -- monitors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "expected"),
    [("normal", Normal), ("shutdown", Shutdown), ("kill", Killed), ("crash", Crashed)],
)
async def test_monitor_reports_the_exit_reason(how: str, expected: type) -> None:
    ref = Worker.start("w")
    await within(ref.started())
    seen, callback = _recorder()
    ref.monitor(callback)
    ref.monitor(callback)  # two monitors, two notifications
    await exit_child(ref, how)
    assert [r for r, _ in seen] == [ref, ref]
    reason = seen[0][1]
    assert isinstance(reason, expected)
    assert reason is ref.exit_reason
    assert reason.abnormal is (how in ("kill", "crash"))
    if isinstance(reason, Crashed):
        assert isinstance(reason.exception, Boom)


async def test_monitor_on_a_dead_actor_fires_with_the_recorded_reason() -> None:
    ref = Worker.start("w")
    ref.tell("crash")
    reason = await within(ref.wait_exit())
    seen, callback = _recorder()
    ref.monitor(callback)
    assert seen == []  # soon, not synchronously
    await yield_loop()
    assert seen == [(ref, reason)]


async def test_demonitor_prevents_the_callback() -> None:
    ref = Worker.start("w")
    seen, callback = _recorder()
    kept_seen, kept = _recorder()
    ref.monitor(callback).cancel()
    ref.monitor(kept)
    ref.kill()
    await within(ref.wait_exit())
    await yield_loop()
    assert seen == []
    assert len(kept_seen) == 1


async def test_demonitor_of_a_dead_actor_right_away_prevents_the_callback() -> None:
    ref = Worker.start("w")
    ref.kill()
    seen, callback = _recorder()
    ref.monitor(callback).cancel()
    await yield_loop()
    assert seen == []


async def test_failing_monitor_callback_does_not_stop_the_others() -> None:
    ref = Worker.start("w")
    seen, callback = _recorder()

    def broken(_ref: Ref[Any], _reason: ExitReason) -> None:
        raise RuntimeError("broken watcher")

    ref.monitor(broken)
    ref.monitor(callback)
    ref.kill()
    await within(ref.wait_exit())
    assert len(seen) == 1


async def test_monitor_of_a_thread_actor_fires_on_the_loop() -> None:
    ref = BlockingThreadWorker.start("t", [], threading.Event())
    await within(ref.started())
    threads: list[int] = []
    ref.monitor(lambda _r, _why: threads.append(threading.get_ident()))
    ref.tell("crash")
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    await yield_loop()
    assert threads == [threading.get_ident()]


# -- links -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["crash", "kill"])
async def test_abnormal_exit_kills_a_linked_actor(how: str) -> None:
    a = Worker.start("a")
    b = Worker.start("b")
    a.link(b)
    await exit_child(a, how)
    reason = await within(b.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, LinkedExit)
    assert reason.exception.reason is a.exit_reason


async def test_link_failure_travels_along_a_chain() -> None:
    a, b, c = (Worker.start(n) for n in "abc")
    a.link(b)
    b.link(c)
    a.tell("crash")
    reason = await within(c.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, LinkedExit)
    inner = reason.exception.reason
    assert isinstance(inner, Crashed)
    assert isinstance(inner.exception, LinkedExit)


async def test_a_trapping_actor_receives_an_exit_signal() -> None:
    trapper = Trapper.start()
    peer = Worker.start("peer")
    trapper.link(peer)
    peer.tell("crash")
    await within(peer.wait_exit())
    signals = await within(trapper.proxy().get_signals())
    assert len(signals) == 1
    assert signals[0].ref is peer
    assert signals[0].reason is peer.exit_reason
    assert trapper.is_alive()


@pytest.mark.parametrize("how", ["normal", "shutdown"])
async def test_a_normal_exit_does_not_propagate(how: str) -> None:
    a = Worker.start("a")
    b = Worker.start("b")
    trapper = Trapper.start()
    a.link(b)
    a.link(trapper)
    await exit_child(a, how)
    await yield_loop()
    assert b.is_alive()
    assert await within(trapper.proxy().get_signals()) == []
    # The link is gone with a: b crashing later does not touch anyone.
    b.tell("crash")
    await within(b.wait_exit())
    assert trapper.is_alive()


async def test_unlink_stops_the_propagation() -> None:
    a = Worker.start("a")
    b = Worker.start("b")
    a.link(b)
    b.unlink(a)
    a.tell("crash")
    await within(a.wait_exit())
    await yield_loop()
    assert b.is_alive()
    assert b.exit_reason is None


async def test_linking_to_an_actor_that_already_crashed_signals_at_once() -> None:
    dead = Worker.start("dead")
    dead.tell("crash")
    await within(dead.wait_exit())
    alive = Worker.start("alive")
    alive.link(dead)
    reason = await within(alive.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, LinkedExit)


async def test_linking_to_an_actor_that_exited_normally_does_nothing() -> None:
    dead = Worker.start("dead")
    request_shutdown(dead)
    await within(dead.wait_exit())
    alive = Worker.start("alive")
    alive.link(dead)
    await yield_loop()
    assert alive.is_alive()


async def test_a_linked_thread_actor_dies_with_its_peer() -> None:
    release = threading.Event()
    thread_ref = BlockingThreadWorker.start("t", [], release)
    await within(thread_ref.started())
    peer = Worker.start("peer")
    peer.link(thread_ref)
    peer.kill()
    reason = await within(thread_ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, LinkedExit)
