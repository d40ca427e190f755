"""Replies given later (``defer_reply``) and the ``on_drained`` hook of AsyncioActor."""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest

from supervisors import AsyncioActor


class Later(AsyncioActor):
    """Holds each ``("hold", x)`` ask, answers them on ``"release"``; counts its drains."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[pykka.Future[Any] | None, Any]] = []
        self.drains: list[int] = []

    def on_receive(self, message: Any) -> Any:
        if message == "release":
            held, self.held = self.held, []
            for future, value in held:
                if value == "fail":
                    self.reply_error(future, ValueError("failed later"))
                else:
                    self.reply(future, value)
            return len(held)
        if message == "crash":
            raise RuntimeError("crash with replies outstanding")
        if isinstance(message, tuple) and message[0] == "hold":
            self.held.append((self.defer_reply(), message[1]))
            return "ignored: the reply is deferred"
        return message

    def on_drained(self) -> None:
        self.drains.append(len(self.held))


async def test_a_deferred_reply_comes_when_given_and_the_actor_goes_on_meanwhile() -> None:
    ref = Later.start()
    first = ref.ask(("hold", 1), block=False)
    second = ref.ask(("hold", "fail"), block=False)
    assert await ref.ask_async("next") == "next"  # not blocked by the held ones
    assert not first.done()
    assert not second.done()
    assert await ref.ask_async("release") == 2
    assert await first == 1
    with pytest.raises(ValueError, match="failed later"):
        await second
    ref.tell(("hold", "told"))  # a tell: nobody to answer, nothing breaks
    assert await ref.ask_async("release") == 1
    ref.stop(block=False)
    await ref.wait_exit()


@pytest.mark.parametrize("end", ["stop", "kill", "crash"])
async def test_deferred_replies_are_refused_when_the_actor_exits(end: str) -> None:
    ref = Later.start()
    held = [ref.ask(("hold", n), block=False) for n in range(3)]
    assert await ref.ask_async("ping") == "ping"
    if end == "stop":
        ref.stop(block=False)
    elif end == "kill":
        ref.kill("test")
    else:
        ref.tell("crash")
    await ref.wait_exit()
    for future in held:
        with pytest.raises(pykka.ActorDeadError):
            await asyncio.wait_for(asyncio.ensure_future(_wait(future)), timeout=2)


async def _wait(future: pykka.Future[Any]) -> Any:
    return await future  # type: ignore[misc]


async def test_on_drained_runs_once_per_run_of_handled_messages() -> None:
    ref = Later.start()
    await ref.started()
    actor = ref._actor_weakref()
    assert isinstance(actor, Later)
    before = len(actor.drains)
    for n in range(5):  # queued in one loop turn: handled in one drain
        ref.tell(("hold", n))
    assert await ref.ask_async("release") == 5
    assert len(actor.drains) - before == 1
    assert actor.drains[-1] == 0
    ref.stop(block=False)
    await ref.wait_exit()


def test_defer_reply_outside_a_handler_is_an_error() -> None:
    async def scenario() -> None:
        ref = Later.start()
        await ref.started()
        actor = ref._actor_weakref()
        assert actor is not None
        with pytest.raises(RuntimeError, match="being handled"):
            actor.defer_reply()
        ref.kill("done")

    asyncio.run(scenario())


async def test_ask_soon_answers_like_ask_with_a_plain_asyncio_future() -> None:
    ref = Later.start()
    reply = ref.ask_soon("hello")
    assert isinstance(reply, asyncio.Future)
    assert await reply == "hello"
    held = ref.ask_soon(("hold", "later"))
    failing = ref.ask_soon(("hold", "fail"))
    assert await ref.ask_soon("release") == 2
    assert await held == "later"
    with pytest.raises(ValueError, match="failed later"):
        await failing
    queued = [ref.ask_soon(("hold", n)) for n in range(3)]
    await ref.ask_soon("ping")
    ref.kill("test")  # deferred and queued asks alike: ActorDeadError, never a hang
    late = ref.ask_soon("after death")
    for reply in [*queued, late]:
        with pytest.raises(pykka.ActorDeadError):
            await asyncio.wait_for(reply, timeout=2)


async def test_a_cancelled_ask_soon_leaves_the_actor_unharmed() -> None:
    ref = Later.start()
    held = ref.ask_soon(("hold", 1))
    await ref.ask_soon("ping")
    held.cancel()  # the caller gave up (a timeout)
    assert await ref.ask_soon("release") == 1  # answering a cancelled ask is a no-op
    assert await ref.ask_soon("still here") == "still here"
    ref.stop(block=False)
    await ref.wait_exit()
