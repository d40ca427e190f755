"""The actor runtime: AsyncioActor (pykka's model on the loop) and ThreadActor."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from typing import Any

import pykka
import pytest

from supervisors import (
    AsyncioActor,
    Crashed,
    Killed,
    Normal,
    Shutdown,
    ThreadActor,
    request_shutdown,
)
from supervisors.future import AsyncioFuture, wait_for_future
from tests.supervisors._helpers import (
    BOUND,
    BlockingThreadWorker,
    Boom,
    Echo,
    eventually,
    within,
    yield_loop,
)


class Gated(AsyncioActor):
    """Coroutine handlers that log their start and end; ``("wait", x)`` waits for the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.cancelled = False

    async def on_receive(self, message: Any) -> Any:
        self.log.append(("begin", message))
        if isinstance(message, tuple) and message[0] == "wait":
            self.entered.set()
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        else:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        if message in ("boom", ("wait", "boom")):
            raise Boom("async")
        self.log.append(("end", message))
        return message

    def get_log(self) -> list[tuple[str, Any]]:
        return list(self.log)

    def add(self, a: int, b: int) -> int:
        return a + b

    async def add_later(self, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b


class Crashy(AsyncioActor):
    expected_errors = (KeyError,)

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[BaseException | None] = []

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise Boom("sync")
        if message == "missing":
            raise KeyError("missing")
        if message == "cancel-myself":
            return self._cancel()
        return message

    async def _cancel(self) -> None:
        raise asyncio.CancelledError

    async def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        await asyncio.sleep(0)
        self.failures.append(exc_value)


# -- tell, ask, proxy ----------------------------------------------------------------------


async def test_tell_ask_and_proxy() -> None:
    ref = Gated.start()
    ref.tell("told")
    assert await within(ref.ask_async("asked")) == "asked"
    proxy = ref.proxy()
    assert await within(proxy.add(2, 3)) == 5
    assert await within(proxy.add_later(4, 5)) == 9
    assert await within(proxy.get_log()) == [
        ("begin", "told"),
        ("end", "told"),
        ("begin", "asked"),
        ("end", "asked"),
    ]
    future = ref.ask("plain", block=False)
    assert isinstance(future, AsyncioFuture)
    assert await within(future) == "plain"
    ref.stop(block=False)
    assert await within(ref.wait_exit()) == Normal()


async def test_coroutine_handlers_run_one_message_at_a_time() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    first = ref.ask(("wait", 1), block=False)
    second = ref.ask(2, block=False)
    await within(actor.entered.wait())
    await yield_loop()
    # The first handler is suspended in an await; the second must not have begun.
    assert actor.log == [("begin", ("wait", 1))]
    assert isinstance(second, AsyncioFuture)
    assert not second.done()
    actor.gate.set()
    assert await within(second) == 2
    assert await within(first) == ("wait", 1)
    assert actor.log == [("begin", ("wait", 1)), ("end", ("wait", 1)), ("begin", 2), ("end", 2)]


async def test_many_coroutine_messages_keep_order() -> None:
    ref = Gated.start()
    for i in range(200):
        ref.tell(i)
    log = await within(ref.proxy().get_log())
    expected = [entry for i in range(200) for entry in (("begin", i), ("end", i))]
    assert log == expected


class AsyncHooks(AsyncioActor):
    def __init__(self, log: list[str], fail_in: str | None = None) -> None:
        super().__init__()
        self.log = log
        self.fail_in = fail_in

    async def on_start(self) -> None:
        self.log.append("start-begin")
        await asyncio.sleep(0)
        if self.fail_in == "on_start":
            raise Boom("on_start")
        self.log.append("start-end")

    def on_receive(self, message: Any) -> Any:
        self.log.append(f"receive {message}")
        if message == "boom":
            raise Boom("receive")
        return message

    async def on_stop(self) -> None:
        self.log.append("stop-begin")
        await asyncio.sleep(0)
        if self.fail_in == "on_stop":
            raise Boom("on_stop")
        self.log.append("stop-end")

    async def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        self.log.append("failure-begin")
        await asyncio.sleep(0)
        self.log.append(f"failure-end {exc_value}")


async def test_async_on_start_completes_before_first_message_and_on_stop_before_exit() -> None:
    log: list[str] = []
    ref = AsyncHooks.start(log)
    ref.tell("early")  # queued while on_start is still awaiting
    await within(ref.started())
    assert await within(ref.ask_async("x")) == "x"
    ref.stop(block=False)
    assert await within(ref.wait_exit()) == Normal()
    assert log == [
        "start-begin",
        "start-end",
        "receive early",
        "receive x",
        "stop-begin",
        "stop-end",
    ]


async def test_async_on_failure_runs_before_watchers_learn_of_the_crash() -> None:
    log: list[str] = []
    ref = AsyncHooks.start(log)
    seen: list[list[str]] = []
    ref.monitor(lambda _ref, _reason: seen.append(list(log)))
    ref.tell("boom")
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, Boom)
    assert log[-2:] == ["failure-begin", "failure-end receive"]
    await yield_loop()
    assert seen == [log]
    assert "stop-begin" not in log


async def test_on_stop_failure_is_a_crash() -> None:
    log: list[str] = []
    ref = AsyncHooks.start(log, fail_in="on_stop")
    await within(ref.started())
    ref.stop(block=False)
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert str(reason.exception) == "on_stop"


async def test_ask_future_get_from_another_thread() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    future = ref.ask(("wait", "x"), block=False)
    await within(actor.entered.wait())
    getter = asyncio.ensure_future(asyncio.to_thread(future.get, timeout=BOUND))
    await yield_loop()
    assert not getter.done()
    actor.gate.set()
    assert await within(getter) == ("wait", "x")


async def test_blocking_get_on_the_loop_thread_raises() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    future = ref.ask(("wait", "x"), block=False)
    with pytest.raises(RuntimeError, match="deadlock"):
        future.get()
    with pytest.raises(RuntimeError, match="deadlock"):
        ref.ask("blocking")
    actor.gate.set()
    assert await within(future) == ("wait", "x")
    # Once the value is there, get() returns it even on the loop's thread.
    assert future.get() == ("wait", "x")


async def test_get_from_a_thread_times_out_without_spoiling_the_future() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    future = ref.ask(("wait", "x"), block=False)
    with pytest.raises(pykka.Timeout):
        await within(asyncio.to_thread(future.get, timeout=0.05))
    actor.gate.set()
    assert await within(future) == ("wait", "x")


async def test_an_awaiter_cancelled_does_not_cancel_the_others() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    future = ref.ask(("wait", "x"), block=False)

    async def wait() -> Any:
        return await future

    patient = asyncio.ensure_future(wait())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wait(), 0.01)
    with pytest.raises(pykka.Timeout):
        await ref.ask_async("y", timeout=0.01)
    actor.gate.set()
    assert await within(patient) == ("wait", "x")
    assert await within(wait()) == ("wait", "x")


async def test_tell_from_other_threads_is_delivered_in_order_per_sender() -> None:
    class Collector(AsyncioActor):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, int]] = []

        def on_receive(self, message: Any) -> Any:
            self.seen.append(message)

    ref = Collector.start()
    actor: Collector = ref._actor_weakref()  # type: ignore[assignment]
    await within(ref.started())
    senders, per_sender = 4, 500

    def send(sender: int) -> None:
        for i in range(per_sender):
            ref.tell((sender, i))

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    await eventually(lambda: len(actor.seen) == senders * per_sender, what="all tells arrived")
    for thread in threads:
        thread.join(BOUND)
    for sender in range(senders):
        assert [i for s, i in actor.seen if s == sender] == list(range(per_sender))


async def test_ask_from_another_thread_blocks_that_thread_only() -> None:
    ref = Echo.start()
    assert await within(asyncio.to_thread(ref.ask, "from thread", timeout=BOUND)) == "from thread"


# -- crashes ---------------------------------------------------------------------------


async def test_exception_in_tell_crashes_the_actor() -> None:
    ref = Crashy.start()
    ref.tell("boom")
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, Boom)
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("after")


async def test_exception_in_ask_crashes_the_actor_and_reaches_the_caller() -> None:
    ref = Crashy.start()
    actor: Crashy = ref._actor_weakref()  # type: ignore[assignment]
    with pytest.raises(Boom) as raised:
        await within(ref.ask_async("boom"))
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert reason.exception is raised.value
    assert actor.failures == [raised.value]


async def test_exception_in_async_ask_handler_crashes_the_actor() -> None:
    ref = Gated.start()
    with pytest.raises(Boom):
        await within(ref.ask_async("boom"))
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, Boom)


async def test_expected_errors_go_back_to_the_caller_without_crashing() -> None:
    ref = Crashy.start()
    with pytest.raises(KeyError):
        await within(ref.ask_async("missing"))
    assert ref.is_alive()
    assert await within(ref.ask_async("still here")) == "still here"
    ref.tell("missing")  # in a tell, an expected error is dropped too
    assert await within(ref.ask_async("and now")) == "and now"
    assert ref.exit_reason is None


async def test_handler_cancelling_itself_crashes_instead_of_hanging() -> None:
    ref = Crashy.start()
    with pytest.raises(RuntimeError, match="cancelled"):
        await within(ref.ask_async("cancel-myself"))
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception.__cause__, asyncio.CancelledError)


@pytest.mark.parametrize("hook", ["sync", "async"])
async def test_crash_in_on_start_fails_started_with_the_cause(hook: str) -> None:
    class FailsSync(AsyncioActor):
        def on_start(self) -> None:
            raise Boom("start")

    class FailsAsync(AsyncioActor):
        async def on_start(self) -> None:
            await asyncio.sleep(0)
            raise Boom("start")

    ref = (FailsSync if hook == "sync" else FailsAsync).start()
    pending = ref.ask("never handled", block=False)
    with pytest.raises(pykka.ActorDeadError) as raised:
        await within(ref.started())
    assert isinstance(raised.value.__cause__, Boom)
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert reason.exception is raised.value.__cause__
    with pytest.raises(pykka.ActorDeadError):
        await within(pending)


async def test_started_fails_for_an_actor_killed_before_it_started() -> None:
    ref = Echo.start()
    ref.kill()
    with pytest.raises(pykka.ActorDeadError):
        await within(ref.started())
    assert await within(ref.wait_exit()) == Killed()


# -- pending asks when an actor dies -----------------------------------------------------


@pytest.mark.parametrize("death", ["crash", "stop", "kill", "shutdown"])
async def test_pending_asks_are_answered_at_once_when_the_actor_dies(death: str) -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    # The handler in progress waits for the gate; with "crash" it raises once released.
    current = ref.ask(("wait", "boom" if death == "crash" else 0), block=False)
    await within(actor.entered.wait())
    if death == "stop":
        ref.stop(block=False)  # queued ahead of the asks below: they come after the stop
    queued = [ref.ask(i, block=False) for i in range(1, 6)]
    if death == "kill":
        ref.kill()
    elif death == "shutdown":
        request_shutdown(ref)
        actor.gate.set()
    else:
        actor.gate.set()
    outcomes = await within(asyncio.gather(*(_outcome(f) for f in queued)), timeout=1.0)
    assert outcomes == ["ActorDeadError"] * 5
    current_outcome = await within(_outcome(current), timeout=1.0)
    expected_current = {"crash": "Boom", "kill": "ActorDeadError"}.get(death, ("wait", 0))
    assert current_outcome == expected_current
    assert actor.cancelled is (death == "kill")
    reason = await within(ref.wait_exit(), timeout=1.0)
    expected = {"crash": Crashed, "stop": Normal, "kill": Killed, "shutdown": Shutdown}[death]
    assert isinstance(reason, expected)


async def _outcome(future: Any) -> Any:
    try:
        return await future
    except Exception as exc:
        return type(exc).__name__


async def test_ask_after_death_fails_at_once() -> None:
    ref = Echo.start()
    ref.kill()
    with pytest.raises(pykka.ActorDeadError):
        await within(ref.ask_async("late"), timeout=1.0)


async def test_kill_cancels_the_coroutine_handler_in_progress() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    asked = asyncio.ensure_future(ref.ask_async(("wait", 1)))
    await within(actor.entered.wait())
    ref.kill("test")
    with pytest.raises(pykka.ActorDeadError):
        await within(asked, timeout=1.0)
    assert await within(ref.wait_exit()) == Killed("test")
    await yield_loop()
    assert actor.cancelled
    assert ("end", ("wait", 1)) not in actor.log


async def test_kill_during_async_on_stop_still_answers_the_stop_caller() -> None:
    class SlowStop(AsyncioActor):
        async def on_stop(self) -> None:
            await asyncio.Event().wait()

    ref = SlowStop.start()
    await within(ref.started())
    stopping = ref.ask(pykka.messages._ActorStop(), block=False)
    await yield_loop()
    ref.kill()
    assert await within(stopping, timeout=1.0) is None
    assert await within(ref.wait_exit()) == Killed()


# -- stop and shutdown ----------------------------------------------------------------


async def test_stop_handles_the_queued_messages_first() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    ref.tell(("wait", 0))
    await within(actor.entered.wait())
    for i in range(1, 4):
        ref.tell(i)
    ref.stop(block=False)
    assert ref.exit_reason is None
    actor.gate.set()
    assert await within(ref.wait_exit()) == Normal()
    assert [m for kind, m in actor.log if kind == "end"] == [("wait", 0), 1, 2, 3]


async def test_request_shutdown_jumps_the_queue() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    ref.tell(("wait", 0))
    await within(actor.entered.wait())
    queued = [ref.ask(i, block=False) for i in range(1, 4)]
    request_shutdown(ref)
    actor.gate.set()
    assert await within(ref.wait_exit()) == Shutdown()
    # The message in progress finishes; the queued ones are never handled.
    assert actor.log == [("begin", ("wait", 0)), ("end", ("wait", 0))]
    for future in queued:
        with pytest.raises(pykka.ActorDeadError):
            await within(future)
    with pytest.raises(pykka.ActorDeadError):
        request_shutdown(ref)


async def test_blocking_stop_on_the_loop_thread_raises_instead_of_deadlocking() -> None:
    ref = Echo.start()
    await within(ref.started())
    with pytest.raises(RuntimeError, match="deadlock"):
        ref.stop()
    assert await within(ref.wait_exit()) == Normal()


# -- pykka's registry -------------------------------------------------------------------


async def test_pykka_registry_sees_live_actors_and_forgets_dead_ones() -> None:
    refs = [Echo.start() for _ in range(3)]
    assert pykka.ActorRegistry.get_by_urn(refs[0].actor_urn) is refs[0]
    assert set(pykka.ActorRegistry.get_by_class(Echo)) >= set(refs)
    refs[0].stop(block=False)
    refs[1].kill()
    crashy = Crashy.start()
    crashy.tell("boom")
    await within(refs[0].wait_exit())
    await within(crashy.wait_exit())
    for dead in (refs[0], refs[1], crashy):
        assert pykka.ActorRegistry.get_by_urn(dead.actor_urn) is None
    assert pykka.ActorRegistry.get_by_urn(refs[2].actor_urn) is refs[2]


async def test_pykka_registry_finds_an_exiting_actor_without_comparing_refs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pykka's list was scanned at every exit, comparing the exiting ref with each live one:
    # with 10,000 connections, a burst of disconnects held the loop for a third of a second.
    refs = [Echo.start() for _ in range(300)]
    await within(asyncio.gather(*(ref.started() for ref in refs)))
    comparisons = 0

    def counting_eq(self: object, other: object) -> bool:
        nonlocal comparisons
        comparisons += 1
        return self is other

    monkeypatch.setattr(pykka.ActorRef, "__eq__", counting_eq)
    for ref in reversed(refs[:150]):  # newest first, as a supervisor stops its children
        ref.stop(block=False)
    await within(asyncio.gather(*(ref.wait_exit() for ref in refs[:150])))
    monkeypatch.undo()
    assert comparisons < 10
    live = pykka.ActorRegistry.get_all()
    assert [ref for ref in live if ref in refs] == refs[150:]  # registration order kept
    assert all(pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None for ref in refs[:150])
    with pytest.raises(ValueError, match="not registered"):
        pykka.ActorRegistry._actor_refs.remove(refs[0])


# -- ThreadActor --------------------------------------------------------------------------


async def test_thread_actor_ask_async_and_proxy() -> None:
    log: list[tuple[str, str]] = []
    ref = BlockingThreadWorker.start("t", log, threading.Event())
    await within(ref.started())
    assert await within(ref.ask_async("ping")) == "t"
    assert await within(ref.ask_async("ping", timeout=BOUND)) == "t"
    request_shutdown(ref)
    assert await within(ref.wait_exit()) == Shutdown()
    assert log == [("start", "t"), ("stop", "t")]


async def test_thread_actor_crash_is_reported_with_its_reason() -> None:
    ref = BlockingThreadWorker.start("t", [], threading.Event())
    with pytest.raises(Boom):
        await within(ref.ask_async("crash"))
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, Boom)
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


async def test_thread_actor_crash_in_a_tell() -> None:
    ref = BlockingThreadWorker.start("t", [], threading.Event())
    ref.tell("crash")
    reason = await within(ref.wait_exit())
    assert isinstance(reason, Crashed)


async def test_thread_actor_crash_in_on_start() -> None:
    class FailingThread(ThreadActor):
        def on_start(self) -> None:
            raise Boom("thread start")

    ref = FailingThread.start()
    with pytest.raises(pykka.ActorDeadError) as raised:
        await within(ref.started())
    assert isinstance(raised.value.__cause__, Boom)


async def test_thread_actor_killed_while_blocked_answers_callers_at_once() -> None:
    release = threading.Event()
    ref = BlockingThreadWorker.start("t", [], release)
    actor: BlockingThreadWorker = ref._actor_weakref()  # type: ignore[assignment]
    blocked = asyncio.ensure_future(ref.ask_async("block"))
    await eventually(actor.entered.is_set, what="handler entered")
    queued = asyncio.ensure_future(ref.ask_async("ping"))
    ref.kill()
    try:
        with pytest.raises(pykka.ActorDeadError):
            await within(blocked, timeout=1.0)
        with pytest.raises(pykka.ActorDeadError):
            await within(queued, timeout=1.0)
        assert await within(ref.wait_exit(), timeout=1.0) == Killed()
        assert not release.is_set()  # the handler is still blocked: nobody waited for it
    finally:
        release.set()


async def test_thread_actor_stop_from_pykka_is_normal() -> None:
    ref = BlockingThreadWorker.start("t", [], threading.Event())
    await within(ref.started())
    ref.stop(block=False)
    assert await within(ref.wait_exit()) == Normal()


async def test_an_actor_answering_timeout_error_is_not_an_ask_timeout() -> None:
    class AnswersTimeout(AsyncioActor):
        expected_errors = (TimeoutError,)

        def on_receive(self, message: Any) -> Any:
            raise TimeoutError("the actor's own")

    ref = AnswersTimeout.start()
    with pytest.raises(TimeoutError, match="the actor's own"):
        await within(ref.ask_async("x", timeout=BOUND))
    assert ref.is_alive()


async def test_a_cancelled_ask_async_caller_is_cancelled() -> None:
    ref = Gated.start()
    actor: Gated = ref._actor_weakref()  # type: ignore[assignment]
    caller = asyncio.ensure_future(ref.ask_async(("wait", 1), timeout=BOUND))
    await within(actor.entered.wait())
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ref.is_alive()  # the actor is not affected by its caller going away
    actor.gate.set()
    assert await within(ref.ask_async("next")) == "next"


async def test_thread_actor_ask_async_times_out() -> None:
    release = threading.Event()
    ref = BlockingThreadWorker.start("t", [], release)
    try:
        with pytest.raises(pykka.Timeout):
            await within(ref.ask_async("block", timeout=0.05))
    finally:
        release.set()
    assert await within(ref.ask_async("ping")) == "t"


async def test_a_kill_before_the_handler_task_starts_leaves_no_unawaited_coroutine() -> None:
    ref = Gated.start()
    await within(ref.started())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref.tell("x")
        # One turn: the inbox's drain runs and creates the handler's task,
        # whose first step comes after this coroutine's next step.
        await asyncio.sleep(0)
        ref.kill()
        await yield_loop()
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []
    assert await within(ref.wait_exit()) == Killed()


async def test_asks_to_blocked_thread_actors_do_not_use_up_the_default_executor() -> None:
    release = threading.Event()
    refs = [BlockingThreadWorker.start(f"t{i}", [], release) for i in range(3)]
    try:
        pending = [
            asyncio.ensure_future(ref.ask_async("block" if i == 0 else "ping"))
            for ref in refs
            for i in range(10)
        ]
        await yield_loop()
        # 30 asks wait on blocked threads; the executor has a handful of threads.
        assert await within(asyncio.to_thread(lambda: "free"), timeout=2.0) == "free"
        assert not any(task.done() for task in pending)
    finally:
        release.set()
    answers = await within(asyncio.gather(*pending))
    assert answers == ["unblocked" if i == 0 else f"t{n}" for n in range(3) for i in range(10)]


async def test_wait_for_future_of_a_stop() -> None:
    ref = Echo.start()
    await within(ref.started())
    assert await within(wait_for_future(ref.stop(block=False))) is True
    thread_ref = BlockingThreadWorker.start("t", [], threading.Event())
    assert await within(wait_for_future(thread_ref.stop(block=False))) is True
    assert await within(thread_ref.wait_exit()) == Normal()
