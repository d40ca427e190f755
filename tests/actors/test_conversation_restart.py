"""A crashed conversation actor is restarted by its supervisor; passivation is final."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.model import Message
from actors.ports import Store
from supervisors import Ref
from tests.actors.conftest import Stack, build_stack
from whispr.node import CONVERSATION_MAX_RESTARTS, CONVERSATION_MAX_SECONDS


class Poisoned(RuntimeError):
    """Not a WhisprError: crashes the actor that meets it."""


@pytest.fixture
async def node_stack(store: Store) -> AsyncIterator[Stack]:
    """The stack with the node's Conversations supervisor settings."""
    built = await build_stack(
        store,
        max_restarts=1000,
        max_seconds=5.0,
        child_max_restarts=CONVERSATION_MAX_RESTARTS,
        child_max_seconds=CONVERSATION_MAX_SECONDS,
    )
    yield built
    built.supervisor.stop(block=False)
    await built.supervisor.wait_exit()


def _poison_get_message(monkeypatch: pytest.MonkeyPatch, store: Store) -> asyncio.Event:
    """Make ``store.get_message`` raise once the returned event is set (it waits till then)."""
    release = asyncio.Event()

    async def get_message(conversation_id: str, seq: int) -> Message | None:
        await release.wait()
        raise Poisoned("connection reset")

    monkeypatch.setattr(store, "get_message", get_message)
    return release


async def _restarted(stack: Stack, conversation_id: str, old: Ref[Any]) -> Ref[Any] | None:
    """The actor registered for the conversation once it is not ``old``; None if none comes."""
    for _ in range(100):
        ref = stack.registry.whereis(("conversation", conversation_id))
        if ref is not None and ref is not old:
            await ref.started()
            return ref
        await asyncio.sleep(0.01)
    return None


async def _crash(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, conversation_id: str
) -> tuple[BaseException, BaseException]:
    """Crash the actor in an edit, a snapshot queued behind it: what both callers got."""
    m = stack.messaging
    release = _poison_get_message(monkeypatch, stack.store)
    crashing = asyncio.ensure_future(m.edit("alice", conversation_id, 999, "x"))
    await asyncio.sleep(0.05)  # the edit is in the actor, waiting on the store
    queued = asyncio.ensure_future(m.conversation("bob", conversation_id))
    await asyncio.sleep(0.01)
    release.set()
    done = await asyncio.wait_for(
        asyncio.gather(crashing, queued, return_exceptions=True), timeout=5
    )
    monkeypatch.undo()
    return done[0], done[1]


async def test_a_crashed_actor_is_back_under_its_name_before_the_next_call(
    node_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = node_stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    await m.send("alice", group.id, Draft(client_id="c1", content="one"))
    first = node_stack.registry.whereis(("conversation", group.id))
    assert first is not None

    answers = await _crash(node_stack, monkeypatch, group.id)
    for answer in answers:  # a clear, retryable refusal for each call the actor held
        assert isinstance(answer, WhisprError), answer
        assert answer.reason is Reason.UNAVAILABLE

    again = await _restarted(node_stack, group.id, first)
    assert again is not None, "not restarted by the supervisor"
    assert [c.ref for c in await node_stack.supervisor.proxy().which_children()] == [again]
    sent = await m.send("bob", group.id, Draft(client_id="c2", content="two"))
    assert sent.seq == 2  # the state was reloaded from the store
    assert node_stack.registry.whereis(("conversation", group.id)) is again


async def test_a_conversation_crashing_too_often_is_given_up_until_its_next_call(
    node_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = node_stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    await m.send("alice", group.id, Draft(client_id="c1", content="one"))
    current = node_stack.registry.whereis(("conversation", group.id))
    for _ in range(CONVERSATION_MAX_RESTARTS):
        assert current is not None
        await _crash(node_stack, monkeypatch, group.id)
        current = await _restarted(node_stack, group.id, current)
    assert current is not None
    await _crash(node_stack, monkeypatch, group.id)
    await asyncio.sleep(0.2)
    assert node_stack.registry.whereis(("conversation", group.id)) is None
    assert await node_stack.supervisor.proxy().which_children() == []
    sent = await m.send("bob", group.id, Draft(client_id="c2", content="two"))
    assert sent.seq == 2


async def test_a_passivated_actor_is_not_restarted(node_stack: Stack) -> None:
    node_stack.messaging.deps = replace(node_stack.messaging.deps, idle_timeout_s=0.05)
    m = node_stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    await m.send("alice", group.id, Draft(client_id="c1", content="one"))
    first = node_stack.registry.whereis(("conversation", group.id))
    assert first is not None
    assert not (await asyncio.wait_for(first.wait_exit(), timeout=5)).abnormal
    await asyncio.sleep(0.2)
    assert node_stack.registry.whereis(("conversation", group.id)) is None
    assert await node_stack.supervisor.proxy().which_children() == []
