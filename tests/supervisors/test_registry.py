"""Registry: unique names, freed on death, atomic lookup_or_start, via names."""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest

from supervisors import (
    AlreadyRegistered,
    AsyncioActor,
    ChildSpec,
    Ref,
    Registry,
    Restart,
    Supervisor,
    request_shutdown,
)
from tests.supervisors._helpers import Boom, Worker, exit_child, within, yield_loop


async def test_register_whereis_unregister() -> None:
    registry = Registry()
    ref = Worker.start("w")
    registry.register("w", ref)
    assert registry.whereis("w") is ref
    assert "w" in registry
    assert len(registry) == 1
    assert list(registry.names()) == ["w"]
    registry.register("w", ref)  # the same ref again: fine
    registry.unregister("w")
    assert registry.whereis("w") is None
    assert "w" not in registry
    assert ref.is_alive()
    registry.unregister("never there")  # no error


async def test_a_name_belongs_to_one_live_actor() -> None:
    registry = Registry()
    first = Worker.start("first")
    second = Worker.start("second")
    registry.register("name", first)
    with pytest.raises(AlreadyRegistered) as raised:
        registry.register("name", second)
    assert raised.value.holder is first
    assert registry.whereis("name") is first


async def test_registering_a_dead_actor_fails() -> None:
    registry = Registry()
    ref = Worker.start("w")
    ref.kill()
    with pytest.raises(pykka.ActorDeadError):
        registry.register("w", ref)
    assert "w" not in registry


@pytest.mark.parametrize("how", ["normal", "shutdown", "crash", "kill"])
async def test_the_name_is_freed_when_the_actor_dies(how: str) -> None:
    registry = Registry()
    ref = Worker.start("w")
    await within(ref.started())
    registry.register("w", ref)
    await exit_child(ref, how)
    assert registry.whereis("w") is None
    assert len(registry) == 0
    successor = Worker.start("w2")
    registry.register("w", successor)
    assert registry.whereis("w") is successor


async def test_an_unregistered_name_is_not_freed_later_by_the_old_actor() -> None:
    registry = Registry()
    old = Worker.start("old")
    new = Worker.start("new")
    registry.register("n", old)
    registry.unregister("n")
    registry.register("n", new)
    old.kill()
    await yield_loop()
    assert registry.whereis("n") is new


async def test_lookup_or_start_under_200_concurrent_callers_starts_once() -> None:
    registry = Registry()
    starts: list[Ref[Any]] = []

    async def start() -> Ref[Any]:
        await asyncio.sleep(0)  # let every caller arrive while the start is under way
        ref = Worker.start("only")
        starts.append(ref)
        return ref

    refs = await within(
        asyncio.gather(*(registry.lookup_or_start("conv", start) for _ in range(200)))
    )
    assert len(starts) == 1
    assert all(r is starts[0] for r in refs)
    assert registry.whereis("conv") is starts[0]
    # Found, not started, from now on.
    assert await within(registry.lookup_or_start("conv", start)) is starts[0]
    assert len(starts) == 1


async def test_lookup_or_start_returns_a_started_actor() -> None:
    registry = Registry()
    gate = asyncio.Event()

    class SlowStart(AsyncioActor):
        started_ok = False

        async def on_start(self) -> None:
            await gate.wait()
            self.started_ok = True

        def on_receive(self, message: Any) -> Any:
            return self.started_ok

    task = asyncio.ensure_future(registry.lookup_or_start("s", SlowStart.start))
    await yield_loop()
    assert not task.done()
    gate.set()
    ref = await within(task)
    assert await within(ref.ask_async("?")) is True


@pytest.mark.parametrize("where", ["start_function", "on_start"])
async def test_a_failing_start_reaches_every_waiter_and_registers_nothing(where: str) -> None:
    registry = Registry()
    calls: list[int] = []

    class FailsToStart(AsyncioActor):
        def on_start(self) -> None:
            raise Boom("on_start")

    async def start() -> Ref[Any]:
        calls.append(1)
        await asyncio.sleep(0)
        if where == "start_function":
            raise Boom("start function")
        return FailsToStart.start()

    results = await within(
        asyncio.gather(
            *(registry.lookup_or_start("x", start) for _ in range(50)), return_exceptions=True
        )
    )
    assert len(calls) == 1
    for result in results:
        if where == "start_function":
            assert isinstance(result, Boom)
        else:
            assert isinstance(result, pykka.ActorDeadError)
            assert isinstance(result.__cause__, Boom)
    assert registry.whereis("x") is None
    assert len(registry) == 0
    # Nothing is left half-started: the next caller starts afresh.
    ref = await within(registry.lookup_or_start("x", lambda: Worker.start("x")))
    assert registry.whereis("x") is ref


async def test_a_cancelled_starter_does_not_fail_the_other_waiters() -> None:
    registry = Registry()
    gate = asyncio.Event()
    calls: list[int] = []

    async def start() -> Ref[Any]:
        calls.append(1)
        if len(calls) == 1:
            await gate.wait()  # the first start never finishes: its caller is cancelled
        return Worker.start("w")

    first = asyncio.ensure_future(registry.lookup_or_start("n", start))
    await yield_loop()
    waiters = [asyncio.ensure_future(registry.lookup_or_start("n", start)) for _ in range(5)]
    await yield_loop()
    first.cancel()
    refs = await within(asyncio.gather(*waiters))
    assert len(calls) == 2
    assert all(r is refs[0] for r in refs)
    assert registry.whereis("n") is refs[0]
    assert first.cancelled()


async def test_via_finds_a_supervised_child_after_its_restart() -> None:
    registry = Registry()
    spec = ChildSpec("svc", registry.via("svc", lambda: Worker.start("svc")))
    sup = Supervisor.start([spec], max_restarts=5)
    await within(sup.started())
    first = registry.whereis("svc")
    assert first is not None
    await exit_child(first, "crash")
    await within(sup.proxy().which_children())  # the supervisor has handled the crash
    second = registry.whereis("svc")
    assert second is not None
    assert second is not first
    assert second.is_alive()
    assert await within(second.ask_async("ping")) == "svc"
    request_shutdown(sup)
    await within(sup.wait_exit())
    assert registry.whereis("svc") is None


async def test_via_with_a_taken_name_fails_the_start_and_stops_the_new_actor() -> None:
    registry = Registry()
    squatter = Worker.start("squatter")
    registry.register("svc", squatter)
    started: list[Ref[Any]] = []

    def start() -> Ref[Any]:
        ref = Worker.start("svc")
        started.append(ref)
        return ref

    sup = Supervisor.start([ChildSpec("svc", registry.via("svc", start))])
    with pytest.raises(pykka.ActorDeadError) as raised:
        await within(sup.started())
    assert isinstance(raised.value.__cause__.__cause__, AlreadyRegistered)  # type: ignore[union-attr]
    assert not started[0].is_alive()
    assert registry.whereis("svc") is squatter


async def test_via_a_transient_child_that_exits_normally_frees_the_name() -> None:
    registry = Registry()
    spec = ChildSpec(
        "svc", registry.via("svc", lambda: Worker.start("svc")), restart=Restart.TRANSIENT
    )
    sup = Supervisor.start([spec])
    await within(sup.started())
    ref = registry.whereis("svc")
    assert ref is not None
    await exit_child(ref, "normal")
    await within(sup.proxy().which_children())
    assert registry.whereis("svc") is None
