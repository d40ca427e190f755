"""DynamicSupervisor: children on demand, max_children, restarts, mass shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest

from supervisors import (
    AlreadyRegistered,
    AsyncioActor,
    ChildCounts,
    ChildNotFound,
    ChildSpec,
    Crashed,
    DynamicSupervisor,
    InjectedCrash,
    Killed,
    MaxChildrenReached,
    Ref,
    Restart,
    RestartIntensityExceeded,
    Shutdown,
    StartChildError,
    request_shutdown,
)
from tests.supervisors._helpers import (
    Boom,
    HangingStop,
    Worker,
    exit_child,
    replaced,
    within,
    worker_spec,
    yield_loop,
)

Log = list[tuple[str, str]]


async def start_dynamic(**options: Any) -> tuple[Ref[DynamicSupervisor], Any]:
    ref = DynamicSupervisor.start(**options)
    await within(ref.started())
    return ref, ref.proxy()


async def live_refs(proxy: Any) -> list[Ref[Any]]:
    return [info.ref for info in await within(proxy.which_children())]


async def replacement(proxy: Any, old: Ref[Any]) -> Ref[Any]:
    """Wait until the supervisor's newest child is no longer ``old``; return it."""

    async def newest() -> Ref[Any] | None:
        refs = await live_refs(proxy)
        return refs[-1] if refs else None

    return await replaced(newest, old, what=str(old))


async def test_start_child_and_terminate_child() -> None:
    log: Log = []
    sup, proxy = await start_dynamic()
    a = await within(proxy.start_child(worker_spec("a", log)))
    b = await within(proxy.start_child(worker_spec("b", log)))
    assert await within(a.ask_async("ping")) == "a"
    assert await live_refs(proxy) == [a, b]
    assert await within(proxy.count_children()) == ChildCounts(
        specs=2, active=2, supervisors=0, workers=2
    )
    await within(proxy.terminate_child(a))
    assert a.exit_reason == Shutdown()
    assert ("stop", "a") in log
    assert await live_refs(proxy) == [b]
    with pytest.raises(ChildNotFound):
        await within(proxy.terminate_child(a))
    assert sup.is_alive()


async def test_same_spec_id_may_run_many_times() -> None:
    _, proxy = await start_dynamic()
    spec = worker_spec("conn", [])
    refs = [await within(proxy.start_child(spec)) for _ in range(3)]
    assert len({id(r) for r in refs}) == 3
    assert [i.id for i in await within(proxy.which_children())] == ["conn"] * 3


async def test_max_children_is_an_error_value_not_a_crash() -> None:
    sup, proxy = await start_dynamic(max_children=2)
    first = await within(proxy.start_child(worker_spec("a", [])))
    await within(proxy.start_child(worker_spec("b", [])))
    with pytest.raises(MaxChildrenReached) as raised:
        await within(proxy.start_child(worker_spec("c", [])))
    assert raised.value.max_children == 2
    assert sup.is_alive()
    assert len(await live_refs(proxy)) == 2
    await within(proxy.terminate_child(first))
    await within(proxy.start_child(worker_spec("c", [])))  # room again


async def test_start_failure_is_a_start_child_error() -> None:
    class FailingStart(AsyncioActor):
        def on_start(self) -> None:
            raise Boom("no")

    sup, proxy = await start_dynamic()
    with pytest.raises(StartChildError) as raised:
        await within(proxy.start_child(ChildSpec("bad", FailingStart.start)))
    assert isinstance(raised.value.__cause__, Boom)
    assert sup.is_alive()
    assert await live_refs(proxy) == []


class SlowStart(AsyncioActor):
    """A child whose ``on_start`` waits for ``gate``, then fails if told to."""

    def __init__(self, gate: asyncio.Event, fail: bool = False) -> None:
        super().__init__()
        self.gate = gate
        self.fail = fail

    async def on_start(self) -> None:
        await self.gate.wait()
        if self.fail:
            raise Boom("failed while starting")

    def on_receive(self, message: Any) -> Any:
        return message


async def test_a_slow_start_does_not_hold_up_the_next_one() -> None:
    _, proxy = await start_dynamic()
    gate = asyncio.Event()
    slow = asyncio.ensure_future(
        proxy.start_child(ChildSpec("slow", lambda: SlowStart.start(gate)))
    )
    await yield_loop()
    fast = await within(proxy.start_child(worker_spec("fast", [])))
    assert await within(fast.ask_async("ping")) == "fast"
    assert not slow.done()  # answered only once its on_start is done
    assert [i.id for i in await within(proxy.which_children())] == ["slow", "fast"]
    gate.set()
    slow_ref = await within(slow)
    assert await within(slow_ref.ask_async("ping")) == "ping"


@pytest.mark.parametrize("restart", list(Restart))
async def test_a_child_that_dies_while_starting_is_forgotten_not_restarted(
    restart: Restart,
) -> None:
    sup, proxy = await start_dynamic(max_restarts=0)
    gate = asyncio.Event()
    spec = ChildSpec("late-failure", lambda: SlowStart.start(gate, fail=True), restart=restart)
    starting = asyncio.ensure_future(proxy.start_child(spec))
    await yield_loop()
    assert len(await live_refs(proxy)) == 1  # supervised while it starts
    gate.set()
    with pytest.raises(StartChildError) as raised:
        await within(starting)
    assert isinstance(raised.value.__cause__, Boom)
    await yield_loop()
    assert await live_refs(proxy) == []
    # Not a restart: with max_restarts=0 a restart would have taken the supervisor down.
    assert sup.is_alive()


async def test_a_supervisor_killed_while_a_child_starts_takes_the_child_with_it() -> None:
    sup, proxy = await start_dynamic()
    gate = asyncio.Event()
    starting = asyncio.ensure_future(
        proxy.start_child(ChildSpec("orphan?", lambda: SlowStart.start(gate)))
    )
    await yield_loop()
    [child] = await live_refs(proxy)
    sup.kill("test")
    with pytest.raises(pykka.ActorDeadError):
        await within(starting)
    assert isinstance(await within(child.wait_exit()), Killed)


@pytest.mark.parametrize("how", ["normal", "shutdown", "crash", "kill"])
@pytest.mark.parametrize("restart", list(Restart))
async def test_restart_per_restart_type(restart: Restart, how: str) -> None:
    log: Log = []
    sup, proxy = await start_dynamic(max_restarts=10)
    other = await within(proxy.start_child(worker_spec("other", log)))
    child = await within(proxy.start_child(worker_spec("c", log, restart=restart)))
    await exit_child(child, how)
    children = await live_refs(proxy)
    abnormal = how in ("crash", "kill")
    restarted = restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and abnormal)
    if restarted:
        assert len(children) == 2
        assert children[0] is other
        assert children[1] is not child
        assert children[1].is_alive()
        assert await within(children[1].ask_async("ping")) == "c"
    else:
        assert children == [other]
    assert other.is_alive()
    assert sup.is_alive()


async def test_restart_intensity_escalates_and_stops_every_child() -> None:
    log: Log = []
    now = [0.0]
    sup, proxy = await start_dynamic(max_restarts=2, max_seconds=5, clock=lambda: now[0])
    bystander = await within(proxy.start_child(worker_spec("bystander", log)))
    child = await within(proxy.start_child(worker_spec("c", log)))
    for _ in range(2):
        await exit_child(child, "crash")
        child = await replacement(proxy, child)
    now[0] = 100.0  # the old restarts fall out of the window
    for _ in range(2):
        await exit_child(child, "crash")
        child = await replacement(proxy, child)
    assert sup.is_alive()
    child.tell("crash")
    reason = await within(sup.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, RestartIntensityExceeded)
    assert bystander.exit_reason == Shutdown()
    assert ("stop", "bystander") in log


async def test_a_child_over_its_own_bound_is_given_up_on_alone() -> None:
    log: Log = []
    now = [0.0]
    sup, proxy = await start_dynamic(
        max_restarts=1000, child_max_restarts=2, child_max_seconds=60, clock=lambda: now[0]
    )
    bystander = await within(proxy.start_child(worker_spec("bystander", log)))
    child = await within(proxy.start_child(worker_spec("c", log, restart=Restart.TRANSIENT)))
    for _ in range(2):
        await exit_child(child, "crash")
        child = await replacement(proxy, child)
    now[0] = 61.0  # the earlier restarts fall out of this child's window
    for _ in range(2):
        await exit_child(child, "crash")
        child = await replacement(proxy, child)
    await exit_child(child, "crash")  # a third restart within 60 s: given up on
    assert await live_refs(proxy) == [bystander]
    other = await within(proxy.start_child(worker_spec("other", log)))
    for _ in range(2):  # each child has its own count
        await exit_child(other, "crash")
        other = await replacement(proxy, other)
    assert sup.is_alive()
    assert bystander.is_alive()


async def test_a_restart_that_finds_its_name_taken_leaves_the_holder_alone() -> None:
    """A child started again by someone else (a caller, on demand) before its supervisor's
    restart holds the child's name: the restart stops there, it does not retry until the
    restart intensity shuts the supervisor down."""
    log: Log = []
    starts = [0]

    def start() -> Ref[Any]:
        starts[0] += 1
        if starts[0] > 1:
            raise AlreadyRegistered("c", "the caller's start")
        return Worker.start("c", log)

    sup, proxy = await start_dynamic(max_restarts=3, max_seconds=60)
    bystander = await within(proxy.start_child(worker_spec("bystander", log)))
    child = await within(
        proxy.start_child(ChildSpec(id="c", start=start, restart=Restart.TRANSIENT))
    )
    await exit_child(child, "crash")
    await asyncio.sleep(0.3)  # what a retrying restart would have done by now
    assert starts[0] == 2  # one restart tried, none after it
    assert sup.is_alive()
    assert await live_refs(proxy) == [bystander]


async def test_stop_terminates_children_concurrently() -> None:
    # Every child's on_stop waits until all of them are in on_stop: that only
    # finishes if they are stopped at the same time. One after another, the
    # first would be killed at its timeout instead.
    count = 20
    entered = 0
    all_in = asyncio.Event()

    class Rendezvous(AsyncioActor):
        async def on_stop(self) -> None:
            nonlocal entered
            entered += 1
            if entered == count:
                all_in.set()
            await all_in.wait()

    sup, proxy = await start_dynamic()
    spec = ChildSpec("r", Rendezvous.start, shutdown=0.5)
    children = [await within(proxy.start_child(spec)) for _ in range(count)]
    request_shutdown(sup)
    assert await within(sup.wait_exit()) == Shutdown()
    assert [c.exit_reason for c in children] == [Shutdown()] * count


async def test_ten_thousand_children_all_stop() -> None:
    sup, proxy = await start_dynamic()
    spec = ChildSpec("w", lambda: Worker.start("w"))
    children: list[Ref[Any]] = list(
        await within(asyncio.gather(*(proxy.start_child(spec) for _ in range(10_000))), 60)
    )
    assert (await within(proxy.count_children())).active == 10_000
    request_shutdown(sup)
    assert await within(sup.wait_exit(), 60) == Shutdown()
    assert sum(1 for c in children if c.exit_reason == Shutdown()) == 10_000
    assert not any(c.is_alive() for c in children)
    assert all(pykka.ActorRegistry.get_by_urn(c.actor_urn) is None for c in children[:100])


async def test_a_killed_dynamic_supervisor_kills_children_still_stopping() -> None:
    log: Log = []
    sup, proxy = await start_dynamic()
    hang = await within(proxy.start_child(ChildSpec("h", lambda: HangingStop.start(log))))
    plain = await within(proxy.start_child(worker_spec("p", log)))
    request_shutdown(sup)
    await within(plain.wait_exit())
    sup.kill()
    assert isinstance(await within(hang.wait_exit(), timeout=1.0), Killed)
    assert await within(sup.wait_exit()) == Killed()


async def test_killing_a_dynamic_supervisor_kills_its_children() -> None:
    sup, proxy = await start_dynamic()
    children = [await within(proxy.start_child(worker_spec(str(i), []))) for i in range(5)]
    sup.kill()
    for child in children:
        assert isinstance(await within(child.wait_exit()), Killed)


async def test_a_dynamic_supervisor_killed_at_any_point_of_a_restart_leaves_no_orphans() -> None:
    for turns in range(30):
        started = await _restart_then_kill(turns)
        alive = [ref for ref in started if ref.is_alive()]
        assert alive == [], f"orphans after {turns} turns: {alive}"


async def _restart_then_kill(turns: int) -> list[Ref[Any]]:
    loop = asyncio.get_running_loop()
    started: list[Ref[Any]] = []

    async def start() -> Ref[Any]:
        await asyncio.sleep(0)
        ref = Worker.start("w")
        started.append(ref)
        return ref

    sup, proxy = await start_dynamic(max_restarts=100)
    children = [await within(proxy.start_child(ChildSpec("w", start))) for _ in range(3)]

    def kill_after(n: int) -> None:
        if n == 0:
            sup.kill("mid-restart")
        else:
            loop.call_soon(kill_after, n - 1)

    children[1].tell("crash")
    kill_after(turns)
    await within(sup.wait_exit())
    await yield_loop(50)
    return started


@pytest.mark.parametrize("restart", list(Restart))
async def test_an_injected_crash_runs_on_failure_and_restarts_per_restart_type(
    restart: Restart,
) -> None:
    log: Log = []
    sup, proxy = await start_dynamic(max_restarts=10)
    child = await within(proxy.start_child(worker_spec("c", log, restart=restart)))
    queued = child.ask_soon("ping")  # queued before the crash: answered first
    child.crash("test")
    assert await within(queued) == "c"
    reason = await within(child.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, InjectedCrash)
    assert str(reason.exception) == "test"
    children = await live_refs(proxy)
    if restart is Restart.TEMPORARY:
        assert children == []
    else:
        assert len(children) == 1
        assert children[0] is not child
        assert await within(children[0].ask_async("ping")) == "c"
    assert sup.is_alive()
