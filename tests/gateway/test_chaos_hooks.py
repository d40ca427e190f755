"""The test-only chaos hooks: a signal crashes a random actor only when they are enabled.

Real signals to this process, handled on the test's loop as a node's ``run_node`` handles
them: on, SIGUSR1 crashes the conversation actor (restarted by its supervisor, state
reloaded) and SIGUSR2 the connection actor (its socket closed with 1011); off, both are
ignored and every actor lives on.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from supervisors import Crashed, InjectedCrash, Ref, stop_tree
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr import chaos_hooks


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningNode]:
    node = await start_node({"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
    yield node
    await stop_tree(node.root, deadline=10)


async def _conversation(node: RunningNode) -> tuple[str, str, str]:
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "t", [bob])).id
    return ada, bob, cid


def _actor(node: RunningNode, cid: str) -> Ref[Any]:
    ref = node.node.registry.whereis(("conversation", cid))
    assert ref is not None
    return ref


async def _replaced(node: RunningNode, cid: str, old: Ref[Any]) -> Ref[Any]:
    async with asyncio.timeout(10):
        while True:
            ref = node.node.registry.whereis(("conversation", cid))
            if ref is not None and ref is not old and ref.has_started:
                return ref
            await asyncio.sleep(0.01)


async def test_on_sigusr1_crashes_a_conversation_actor_and_its_supervisor_restarts_it(
    running: RunningNode,
) -> None:
    ada, bob, cid = await _conversation(running)
    topic = f"conversation:{cid}"
    remove = chaos_hooks.install(True, running.node.registry, asyncio.get_running_loop())
    try:
        async with running.client(ada) as a, running.client(bob) as b:
            await a.join(topic)
            await b.join(topic, {"last_seq": 0})
            assert (await a.push(topic, "send_message", {"client_id": "m1", "content": "x"}))[
                "seq"
            ] == 1
            before = _actor(running, cid)
            os.kill(os.getpid(), signal.SIGUSR1)
            reason = await asyncio.wait_for(before.wait_exit(), 10)
            assert isinstance(reason, Crashed)
            assert isinstance(reason.exception, InjectedCrash)
            # Restarted by its supervisor before any call asks for it, its state reloaded.
            await _replaced(running, cid, before)
            sent = await a.push(topic, "send_message", {"client_id": "m2", "content": "y"})
            assert sent["seq"] == 2
            event = await b.next_event(topic, "new_message")
            assert event.payload["message"]["seq"] == 1
            event = await b.next_event(topic, "new_message")
            assert event.payload["message"]["seq"] == 2
    finally:
        remove()


async def test_on_sigusr2_crashes_a_connection_actor_whose_socket_closes_with_1011(
    running: RunningNode,
) -> None:
    ada, _, cid = await _conversation(running)
    remove = chaos_hooks.install(True, running.node.registry, asyncio.get_running_loop())
    try:
        async with running.client(ada) as a:
            await a.join(f"conversation:{cid}")
            os.kill(os.getpid(), signal.SIGUSR2)
            code, _ = await asyncio.wait_for(a.wait_closed(), 10)
            assert code == 1011
        async with running.client(ada) as again:  # the node serves the next one
            await again.join(f"conversation:{cid}")
    finally:
        remove()


async def test_off_the_signals_are_logged_and_nothing_is_crashed(running: RunningNode) -> None:
    ada, _, cid = await _conversation(running)
    topic = f"conversation:{cid}"
    remove = chaos_hooks.install(False, running.node.registry, asyncio.get_running_loop())
    try:
        async with running.client(ada) as a:
            await a.join(topic)
            await a.push(topic, "send_message", {"client_id": "m1", "content": "x"})
            before = _actor(running, cid)
            with structlog.testing.capture_logs() as logs:
                os.kill(os.getpid(), signal.SIGUSR1)
                os.kill(os.getpid(), signal.SIGUSR2)
                for _ in range(100):  # what a crash would have taken, and more
                    await asyncio.sleep(0.01)
            assert sorted(entry["signal"] for entry in logs) == ["SIGUSR1", "SIGUSR2"]
            assert all("ignored" in entry["event"] for entry in logs)
            assert before.is_alive()
            assert _actor(running, cid) is before
            assert a.closed is None
            sent = await a.push(topic, "send_message", {"client_id": "m2", "content": "y"})
            assert sent["seq"] == 2
    finally:
        remove()


async def test_a_node_without_actors_to_crash_answers_none(running: RunningNode) -> None:
    registry = running.node.registry
    assert await chaos_hooks.crash_one(registry, "connections", random.Random(1)) is None
    assert await chaos_hooks.crash_one(registry, "no-such-supervisor", random.Random(1)) is None
