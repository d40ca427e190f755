"""Supervisor: OTP's rules for starting, restarting and stopping children."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable
from typing import Any

import pykka
import pytest

from supervisors import (
    AsyncioActor,
    ChildCounts,
    ChildExists,
    ChildNotFound,
    ChildSpec,
    ChildType,
    Crashed,
    Killed,
    Ref,
    Restart,
    RestartIntensityExceeded,
    Shutdown,
    StartChildError,
    Strategy,
    Supervisor,
    request_shutdown,
)
from tests.supervisors._helpers import (
    BlockingThreadWorker,
    Boom,
    HangingStop,
    Worker,
    eventually,
    exit_child,
    replaced,
    within,
    worker_spec,
    yield_loop,
)

Log = list[tuple[str, str]]


async def start_supervisor(specs: list[ChildSpec], **options: Any) -> tuple[Ref[Supervisor], Any]:
    ref = Supervisor.start(specs, **options)
    await within(ref.started())
    return ref, ref.proxy()


async def refs_by_id(proxy: Any) -> dict[Hashable, Ref[Any] | None]:
    return {info.id: info.ref for info in await within(proxy.which_children())}


# -- start and stop order -----------------------------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    log: Log = []
    ref, proxy = await start_supervisor([worker_spec(n, log) for n in "abcd"])
    assert log == [("start", n) for n in "abcd"]
    children = await refs_by_id(proxy)
    assert list(children) == list("abcd")
    assert all(r is not None and r.is_alive() for r in children.values())
    log.clear()
    request_shutdown(ref)
    assert await within(ref.wait_exit()) == Shutdown()
    assert log == [("stop", n) for n in "dcba"]
    for child in children.values():
        assert child is not None
        assert child.exit_reason == Shutdown()


async def test_pykka_stop_of_a_supervisor_stops_its_children_too() -> None:
    log: Log = []
    ref, _ = await start_supervisor([worker_spec(n, log) for n in "ab"])
    ref.stop(block=False)
    await within(ref.wait_exit())
    assert log[-2:] == [("stop", "b"), ("stop", "a")]


# -- the restart matrix --------------------------------------------------------------------

STRATEGIES = list(Strategy)
RESTARTS = list(Restart)
EXITS = ["normal", "shutdown", "crash", "kill"]


def expected_after_exit(strategy: Strategy, restart: Restart, how: str) -> tuple[bool, Log]:
    """OTP's rules for the middle child ``b`` of ``a, b, c`` (a and c permanent).

    Returns whether ``b`` is restarted and the log of starts and stops that follow its exit.
    """
    abnormal = how in ("crash", "kill")
    restarted = restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and abnormal)
    log: Log = [] if abnormal else [("stop", "b")]  # on_stop runs on normal exits only
    if restarted:
        if strategy is Strategy.ONE_FOR_ONE:
            log += [("start", "b")]
        elif strategy is Strategy.ONE_FOR_ALL:
            log += [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")]
        else:
            log += [("stop", "c"), ("start", "b"), ("start", "c")]
    return restarted, log


@pytest.mark.parametrize("how", EXITS)
@pytest.mark.parametrize("restart", RESTARTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_restart_matrix(strategy: Strategy, restart: Restart, how: str) -> None:
    log: Log = []
    specs = [
        worker_spec("a", log),
        worker_spec("b", log, restart=restart),
        worker_spec("c", log),
    ]
    sup, proxy = await start_supervisor(specs, strategy=strategy, max_restarts=10)
    before = await refs_by_id(proxy)
    log.clear()
    b = before["b"]
    assert b is not None
    await exit_child(b, how)
    # The supervisor learns of the exit through its inbox, so this answer
    # comes after it has dealt with it.
    after = await refs_by_id(proxy)
    restarted, expected_log = expected_after_exit(strategy, restart, how)
    assert log == expected_log

    if restart is Restart.TEMPORARY:
        assert list(after) == ["a", "c"]
    else:
        assert list(after) == ["a", "b", "c"]
    if restarted:
        assert after["b"] is not None
        assert after["b"] is not b
        assert after["b"].is_alive()
        replaced = {
            Strategy.ONE_FOR_ONE: {"b"},
            Strategy.ONE_FOR_ALL: {"a", "b", "c"},
            Strategy.REST_FOR_ONE: {"b", "c"},
        }[strategy]
    else:
        replaced = set()
        if restart is Restart.TRANSIENT:
            assert after["b"] is None
    for name in ("a", "c"):
        assert (after[name] is not before[name]) is (name in replaced)
        old = before[name]
        assert old is not None
        assert old.is_alive() is (name not in replaced)
        if name in replaced:
            assert old.exit_reason == Shutdown()
    assert sup.is_alive()
    counts = await within(proxy.count_children())
    assert counts.specs == len(after)
    assert counts.active == sum(1 for r in after.values() if r is not None)


async def test_one_for_all_drops_temporary_siblings() -> None:
    log: Log = []
    specs = [
        worker_spec("a", log),
        worker_spec("temp", log, restart=Restart.TEMPORARY),
        worker_spec("c", log),
    ]
    _, proxy = await start_supervisor(specs, strategy=Strategy.ONE_FOR_ALL, max_restarts=5)
    before = await refs_by_id(proxy)
    c = before["c"]
    assert c is not None
    await exit_child(c, "crash")
    after = await refs_by_id(proxy)
    assert list(after) == ["a", "c"]
    temp = before["temp"]
    assert temp is not None
    assert temp.exit_reason == Shutdown()


async def test_one_for_all_also_restarts_a_child_that_was_terminated() -> None:
    # As OTP does: a restart of the group starts every spec it holds.
    log: Log = []
    _, proxy = await start_supervisor(
        [worker_spec("a", log), worker_spec("b", log)], strategy=Strategy.ONE_FOR_ALL
    )
    await within(proxy.terminate_child("a"))
    assert (await refs_by_id(proxy))["a"] is None
    b = (await refs_by_id(proxy))["b"]
    assert b is not None
    await exit_child(b, "crash")
    after = await refs_by_id(proxy)
    assert after["a"] is not None
    assert after["a"].is_alive()


# -- restart intensity -------------------------------------------------------------------


@pytest.mark.parametrize("max_restarts", [0, 1, 3])
async def test_n_restarts_survive_and_the_next_one_escalates(max_restarts: int) -> None:
    log: Log = []
    specs = [worker_spec("a", log), worker_spec("b", log), worker_spec("c", log)]
    sup, proxy = await start_supervisor(specs, max_restarts=max_restarts, max_seconds=3600)
    for _ in range(max_restarts):
        b = (await refs_by_id(proxy))["b"]
        assert b is not None
        await exit_child(b, "crash")
    children = await refs_by_id(proxy)
    assert all(r is not None and r.is_alive() for r in children.values())
    b = children["b"]
    assert b is not None
    b.tell("crash")
    reason = await within(sup.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, RestartIntensityExceeded)
    for name, child in children.items():
        assert child is not None
        assert not child.is_alive()
        if name != "b":
            assert child.exit_reason == Shutdown()
    # Children were terminated in reverse order before the supervisor gave up.
    assert log[-2:] == [("stop", "c"), ("stop", "a")]


async def _restarted(proxy: Any, child_id: str, old: Ref[Any]) -> Ref[Any]:
    """Wait until the supervisor lists a replacement for ``old``; return it."""

    async def listed() -> Ref[Any] | None:
        return (await refs_by_id(proxy))[child_id]

    return await replaced(listed, old, what=child_id)


async def test_restarts_older_than_max_seconds_are_forgotten() -> None:
    now = [0.0]
    sup, proxy = await start_supervisor(
        [worker_spec("a", [])], max_restarts=2, max_seconds=10, clock=lambda: now[0]
    )
    a = (await refs_by_id(proxy))["a"]
    assert a is not None
    for step in range(10):
        now[0] = step * 6.0  # two restarts in any 10 s window, never three
        await exit_child(a, "kill")
        a = await _restarted(proxy, "a", a)  # counted at this step's time
    assert sup.is_alive()
    now[0] = 1000.0  # then three within one window: the third is one too many
    for _ in range(2):
        await exit_child(a, "kill")
        a = await _restarted(proxy, "a", a)
    assert sup.is_alive()
    await exit_child(a, "kill")
    reason = await within(sup.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, RestartIntensityExceeded)


async def test_a_failing_restart_counts_as_a_restart_and_escalates() -> None:
    attempts: list[int] = []

    class FailsAfterFirst(AsyncioActor):
        def on_start(self) -> None:
            attempts.append(1)
            if len(attempts) > 1:
                raise Boom("restart fails")

        def on_receive(self, message: Any) -> Any:
            raise Boom("crash")

    spec = ChildSpec("flaky", FailsAfterFirst.start)
    sup, proxy = await start_supervisor([spec], max_restarts=3, max_seconds=3600)
    child = (await refs_by_id(proxy))["flaky"]
    assert child is not None
    child.tell("crash")
    reason = await within(sup.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, RestartIntensityExceeded)
    assert len(attempts) == 1 + 3  # the first start, then three failed restarts


async def test_a_child_supervisor_escalation_counts_as_a_restart_in_the_parent() -> None:
    log: Log = []
    inner_spec = ChildSpec.supervisor(
        Supervisor, [worker_spec("w", log)], id="inner", max_restarts=0
    )
    parent, proxy = await start_supervisor([inner_spec], max_restarts=1, max_seconds=3600)

    async def crash_worker() -> Ref[Any]:
        inner = (await refs_by_id(proxy))["inner"]
        assert inner is not None
        worker = (await refs_by_id(inner.proxy()))["w"]
        assert worker is not None
        await exit_child(worker, "crash")
        inner_reason = await within(inner.wait_exit())
        assert isinstance(inner_reason, Crashed)
        assert isinstance(inner_reason.exception, RestartIntensityExceeded)
        return inner

    first_inner = await crash_worker()
    second_inner = (await refs_by_id(proxy))["inner"]
    assert second_inner is not None
    assert second_inner is not first_inner
    assert second_inner.is_alive()
    assert parent.is_alive()
    await crash_worker()
    reason = await within(parent.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, RestartIntensityExceeded)


# -- shutdown -------------------------------------------------------------------------------


async def test_a_child_that_does_not_stop_within_its_timeout_is_killed() -> None:
    log: Log = []
    specs = [
        worker_spec("a", log),
        ChildSpec("hang", lambda: HangingStop.start(log), shutdown=0.2),
    ]
    _, proxy = await start_supervisor(specs)
    hang = (await refs_by_id(proxy))["hang"]
    assert hang is not None
    await within(proxy.terminate_child("hang"))
    assert hang.exit_reason == Killed("shutdown timeout")
    assert ("stopping", "hang") in log
    await yield_loop()
    assert ("cancelled", "hang") in log


async def test_brutal_kill_skips_on_stop() -> None:
    log: Log = []
    sup, proxy = await start_supervisor(
        [worker_spec("a", log), worker_spec("b", log, shutdown="brutal_kill")]
    )
    b = (await refs_by_id(proxy))["b"]
    assert b is not None
    log.clear()
    request_shutdown(sup)
    await within(sup.wait_exit())
    assert log == [("stop", "a")]
    assert b.exit_reason == Killed("brutal_kill")


async def test_shutdown_of_the_tree_kills_a_hanging_grandchild_at_its_timeout() -> None:
    log: Log = []
    inner = ChildSpec.supervisor(
        Supervisor,
        [worker_spec("w", log), ChildSpec("hang", lambda: HangingStop.start(log), shutdown=0.1)],
        id="inner",
    )
    sup, _ = await start_supervisor([worker_spec("first", log), inner])
    log.clear()
    request_shutdown(sup)
    assert await within(sup.wait_exit()) == Shutdown()
    assert [e for e in log if e[0] == "stop" or e[0] == "stopping"] == [
        ("stopping", "hang"),
        ("stop", "w"),
        ("stop", "first"),
    ]


# -- start failures ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["on_start", "start_function"])
async def test_a_start_failure_during_init_fails_the_supervisor(where: str) -> None:
    log: Log = []

    class FailingStart(AsyncioActor):
        def on_start(self) -> None:
            raise Boom("no start")

    def broken_start() -> Ref[Any]:
        raise Boom("no start")

    failing = ChildSpec("b", FailingStart.start if where == "on_start" else broken_start)
    sup = Supervisor.start([worker_spec("a", log), failing, worker_spec("c", log)])
    with pytest.raises(pykka.ActorDeadError) as raised:
        await within(sup.started())
    cause = raised.value.__cause__
    assert isinstance(cause, StartChildError)
    assert cause.child_id == "b"
    assert isinstance(cause.__cause__, Boom)
    assert log == [("start", "a"), ("stop", "a")]
    reason = await within(sup.wait_exit())
    assert isinstance(reason, Crashed)


async def test_a_start_function_returning_a_non_ref_is_a_start_error() -> None:
    class Plain(pykka.ThreadingActor):
        pass

    sup = Supervisor.start([ChildSpec("plain", Plain.start)])
    with pytest.raises(pykka.ActorDeadError) as raised:
        await within(sup.started())
    assert isinstance(raised.value.__cause__, StartChildError)


async def test_async_start_functions_are_awaited() -> None:
    log: Log = []

    async def start() -> Ref[Any]:
        await asyncio.sleep(0)
        return Worker.start("async", log)

    _, proxy = await start_supervisor([ChildSpec("async", start)])
    child = (await refs_by_id(proxy))["async"]
    assert child is not None
    assert await within(child.ask_async("ping")) == "async"


# -- the OTP API ---------------------------------------------------------------------------


async def test_start_terminate_restart_delete_child() -> None:
    log: Log = []
    sup, proxy = await start_supervisor([worker_spec("a", log)])
    new = await within(proxy.start_child(worker_spec("b", log)))
    assert await within(new.ask_async("ping")) == "b"
    assert list(await refs_by_id(proxy)) == ["a", "b"]

    await within(proxy.terminate_child("b"))
    assert new.exit_reason == Shutdown()
    assert (await refs_by_id(proxy))["b"] is None
    assert await within(proxy.count_children()) == ChildCounts(
        specs=2, active=1, supervisors=0, workers=2
    )

    again = await within(proxy.restart_child("b"))
    assert again is not new
    assert again.is_alive()
    assert (await refs_by_id(proxy))["b"] is again

    await within(proxy.terminate_child("b"))
    await within(proxy.delete_child("b"))
    assert list(await refs_by_id(proxy)) == ["a"]
    assert sup.is_alive()


async def test_api_errors_go_back_to_the_caller_without_crashing_the_supervisor() -> None:
    log: Log = []
    sup, proxy = await start_supervisor([worker_spec("a", log)])
    with pytest.raises(ChildExists):
        await within(proxy.start_child(worker_spec("a", log)))
    with pytest.raises(ChildNotFound):
        await within(proxy.terminate_child("nope"))
    with pytest.raises(ChildNotFound):
        await within(proxy.restart_child("nope"))
    with pytest.raises(ChildNotFound):
        await within(proxy.delete_child("nope"))
    with pytest.raises(ChildExists):
        await within(proxy.restart_child("a"))  # it runs
    with pytest.raises(ChildExists):
        await within(proxy.delete_child("a"))  # it runs
    with pytest.raises(StartChildError) as raised:
        await within(proxy.start_child(ChildSpec("bad", _raise_boom)))
    assert isinstance(raised.value.__cause__, Boom)
    assert list(await refs_by_id(proxy)) == ["a"]
    assert sup.is_alive()
    assert sup.exit_reason is None


def _raise_boom() -> Ref[Any]:
    raise Boom("start")


async def test_terminating_a_temporary_child_forgets_its_spec() -> None:
    _, proxy = await start_supervisor([worker_spec("t", [], restart=Restart.TEMPORARY)])
    await within(proxy.terminate_child("t"))
    assert await refs_by_id(proxy) == {}


async def test_which_children_and_count_children() -> None:
    inner = ChildSpec.supervisor(Supervisor, [worker_spec("x", [])], id="inner")
    specs = [
        worker_spec("a", []),
        inner,
        worker_spec("t", [], restart=Restart.TRANSIENT),
    ]
    _, proxy = await start_supervisor(specs)
    infos = await within(proxy.which_children())
    assert [(i.id, i.type, i.restart) for i in infos] == [
        ("a", ChildType.WORKER, Restart.PERMANENT),
        ("inner", ChildType.SUPERVISOR, Restart.PERMANENT),
        ("t", ChildType.WORKER, Restart.TRANSIENT),
    ]
    assert all(i.ref is not None and i.ref.is_alive() for i in infos)
    assert await within(proxy.count_children()) == ChildCounts(
        specs=3, active=3, supervisors=1, workers=2
    )
    transient = infos[2].ref
    assert transient is not None
    await exit_child(transient, "normal")
    assert await within(proxy.count_children()) == ChildCounts(
        specs=3, active=2, supervisors=1, workers=2
    )


async def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor.start([worker_spec("a", []), worker_spec("a", [])])


# -- thread actors, kills ---------------------------------------------------------------------


async def test_a_thread_actor_child_is_supervised_like_the_others() -> None:
    log: Log = []
    release = threading.Event()
    spec = ChildSpec("t", lambda: BlockingThreadWorker.start("t", log, release), shutdown=0.5)
    sup, proxy = await start_supervisor([worker_spec("a", log), spec], max_restarts=5)
    first = (await refs_by_id(proxy))["t"]
    assert first is not None
    assert await within(first.ask_async("ping")) == "t"
    await exit_child(first, "crash")
    second = (await refs_by_id(proxy))["t"]
    assert second is not None
    assert second is not first
    assert await within(second.ask_async("ping")) == "t"
    await exit_child(second, "kill")
    third = (await refs_by_id(proxy))["t"]
    assert third is not None
    assert third is not second
    # Blocked in a handler at shutdown: killed at its timeout.
    third.tell("block")
    actor: BlockingThreadWorker = third._actor_weakref()  # type: ignore[assignment]
    try:
        await eventually(actor.entered.is_set, what="blocked in the handler")
        log.clear()
        request_shutdown(sup)
        assert await within(sup.wait_exit()) == Shutdown()
        assert third.exit_reason == Killed("shutdown timeout")
        assert log == [("stop", "a")]
    finally:
        release.set()


async def test_killing_a_supervisor_kills_its_children_and_grandchildren() -> None:
    log: Log = []
    inner = ChildSpec.supervisor(Supervisor, [worker_spec("x", log)], id="inner")
    sup, proxy = await start_supervisor([worker_spec("a", log), inner])
    children = await refs_by_id(proxy)
    inner_ref = children["inner"]
    assert inner_ref is not None
    grandchild = (await refs_by_id(inner_ref.proxy()))["x"]
    assert grandchild is not None
    log.clear()
    sup.kill()
    assert await within(sup.wait_exit()) == Killed()
    for ref in (*children.values(), grandchild):
        assert ref is not None
        assert isinstance(await within(ref.wait_exit()), Killed)
    assert log == []  # killed: no on_stop anywhere


async def test_a_supervisor_killed_while_a_child_stops_kills_that_child() -> None:
    log: Log = []
    specs = [worker_spec("a", log), ChildSpec("hang", lambda: HangingStop.start(log), shutdown=60)]
    sup, proxy = await start_supervisor(specs)
    hang = (await refs_by_id(proxy))["hang"]
    assert hang is not None
    request_shutdown(sup)
    await eventually(lambda: ("stopping", "hang") in log, what="hang is stopping")
    sup.kill()
    assert isinstance(await within(hang.wait_exit(), timeout=1.0), Killed)


async def test_a_supervisor_killed_while_a_child_starts_kills_that_child() -> None:
    entered = asyncio.Event()
    started: list[Ref[Any]] = []

    class SlowStart(AsyncioActor):
        async def on_start(self) -> None:
            started.append(self.actor_ref)
            entered.set()
            await asyncio.Event().wait()

    sup = Supervisor.start([ChildSpec("slow", SlowStart.start)])
    await within(entered.wait())
    sup.kill()
    assert isinstance(await within(started[0].wait_exit(), timeout=1.0), Killed)


async def test_a_child_exit_during_supervisor_start_is_handled_after() -> None:
    log: Log = []
    gate = asyncio.Event()

    class WaitsForGate(AsyncioActor):
        async def on_start(self) -> None:
            await gate.wait()

    first_started = asyncio.Event()

    class CrashesSoon(Worker):
        def on_start(self) -> None:
            super().on_start()
            first_started.set()

    specs = [
        ChildSpec("a", lambda: CrashesSoon.start("a", log)),
        ChildSpec("gate", WaitsForGate.start),
    ]
    sup = Supervisor.start(specs, max_restarts=3)
    await within(first_started.wait())
    a = pykka.ActorRegistry.get_by_class(CrashesSoon)[0]
    a.tell("crash")
    await within(a.wait_exit())  # type: ignore[attr-defined]
    gate.set()
    await within(sup.started())
    children = await refs_by_id(sup.proxy())
    new_a = children["a"]
    assert new_a is not None
    assert new_a is not a
    assert new_a.is_alive()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_supervisor_killed_at_any_point_of_a_restart_leaves_no_orphans(
    strategy: Strategy,
) -> None:
    # Kill the supervisor after 0, 1, 2... loop turns into a restart, so that
    # some kill lands at every await of the restart: whatever it was doing,
    # no child may survive it (nor be started after it).
    for turns in range(40):
        started = await _restart_then_kill(strategy, turns)
        alive = [ref for ref in started if ref.is_alive()]
        assert alive == [], f"orphans after {turns} turns: {alive}"


async def _restart_then_kill(strategy: Strategy, turns: int) -> list[Ref[Any]]:
    loop = asyncio.get_running_loop()
    started: list[Ref[Any]] = []

    def spec(name: str) -> ChildSpec:
        def start() -> Ref[Any]:
            ref = Worker.start(name)
            started.append(ref)
            return ref

        return ChildSpec(name, start, shutdown=1.0)

    sup, proxy = await start_supervisor(
        [spec("a"), spec("b"), spec("c")], strategy=strategy, max_restarts=100
    )
    b = (await refs_by_id(proxy))["b"]
    assert b is not None

    def kill_after(n: int) -> None:
        if n == 0:
            sup.kill("mid-restart")
        else:
            loop.call_soon(kill_after, n - 1)

    b.tell("crash")
    kill_after(turns)
    await within(sup.wait_exit())
    await yield_loop(50)
    return started
