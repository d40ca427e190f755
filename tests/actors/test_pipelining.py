"""Pipelined sends: one actor, several sends committing and queued at once.

The conversation actor answers a send only after its commit, but takes the
next sends meanwhile: they form its next chunk, written in one batch. These
tests hold batches back so that sends pile up, then check the guarantees:
every acknowledged message stored once, in one gap-free order; nothing of a
failed batch acknowledged, and nothing after it lost or misnumbered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.model import InsertResult, Message
from actors.ports import Store
from tests.actors.conftest import Stack, build_stack


class Gate:
    """The store, with batches held until released and failures on demand."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.open = asyncio.Event()
        self.open.set()
        self.batches: list[list[Message]] = []
        self.fail: set[int] = set()  # numbers of the batches (from 0) that fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def insert_messages(self, batch: Sequence[Message]) -> list[InsertResult]:
        number = len(self.batches)
        self.batches.append(list(batch))
        await self.open.wait()
        if number in self.fail:
            raise ConnectionError("the database went away mid-pipeline")
        return await self._store.insert_messages(batch)


def text(client_id: str) -> Draft:
    return Draft(client_id=client_id, content=client_id)


async def gated_stack(store: Store) -> tuple[Stack, Gate]:
    gate = Gate(store)
    return await build_stack(cast(Store, gate)), gate


async def stop(stack: Stack) -> None:
    stack.supervisor.stop(block=False)
    await stack.supervisor.wait_exit()


async def test_several_sends_in_flight_from_one_actor_end_gap_free(store: Store) -> None:
    stack, gate = await gated_stack(store)
    try:
        m = stack.messaging
        group = await m.create_group("alice", "Pipeline", ["bob", "carol"])
        await m.send("alice", group.id, text("first"))
        gate.open.clear()  # batches now wait: the sends below pile up
        sends = [
            asyncio.ensure_future(m.send(user, group.id, text(f"{user}-{n}")))
            for n in range(10)
            for user in ("alice", "bob", "carol")
        ]
        await asyncio.sleep(0.05)
        assert not any(s.done() for s in sends)  # nothing acknowledged before its commit
        gate.open.set()
        sent = await asyncio.gather(*sends)
        # The first chunk held one send, the rest queued meanwhile and went together.
        sizes = [len(b) for b in gate.batches[1:]]
        assert max(sizes) > 1
        assert [s.seq for s in sent] == list(range(2, 32))  # in the order taken, gap-free
        stored = await m.history("alice", group.id, after_seq=0, limit=200)
        assert [x.seq for x in stored] == list(range(1, 32))
        assert {x.client_id: x.seq for x in stored[1:]} == {s.client_id: s.seq for s in sent}
    finally:
        await stop(stack)


async def test_a_failed_batch_mid_pipeline_loses_nothing_acknowledged(store: Store) -> None:
    stack, gate = await gated_stack(store)
    try:
        m = stack.messaging
        group = await m.create_group("alice", "Failures", ["bob", "carol"])
        gate.fail = {2, 5, 6}  # some batches fail while others are queued behind them
        acknowledged: dict[str, int] = {}
        refused = 0

        async def sender(user: str) -> None:
            nonlocal refused
            for n in range(15):
                client_id = f"{user}-{n}"
                for _attempt in range(10):  # a client retries until acknowledged
                    try:
                        message = await m.send(user, group.id, text(client_id))
                    except WhisprError as exc:
                        if exc.reason is not Reason.UNAVAILABLE:
                            raise
                        refused += 1
                        continue
                    acknowledged[client_id] = message.seq
                    break

        await asyncio.gather(*(sender(u) for u in ("alice", "bob", "carol")))
        assert refused > 0
        assert len(acknowledged) == 45
        stored = await m.history("alice", group.id, after_seq=0, limit=200)
        assert [x.seq for x in stored] == list(range(1, 46))  # gap-free, nothing twice
        assert {x.client_id: x.seq for x in stored} == acknowledged
    finally:
        await stop(stack)


async def test_duplicates_in_a_pipeline_take_no_seq(store: Store) -> None:
    stack, gate = await gated_stack(store)
    try:
        m = stack.messaging
        # A tiny cache, so that an old client id is only known to the store.
        m.deps = replace(m.deps, cache_size=2)
        group = await m.create_group("alice", "Duplicates", ["bob"])
        old = await m.send("alice", group.id, text("old"))
        for n in range(3):
            await m.send("bob", group.id, text(f"warm-{n}"))
        gate.open.clear()
        names = ["a", "old", "b", "a", "c"]
        sends = [asyncio.ensure_future(m.send("alice", group.id, text(n))) for n in names]
        await asyncio.sleep(0.05)
        gate.open.set()
        sent = await asyncio.gather(*sends)
        assert sent[1] == old  # the original, from the store
        assert sent[0] == sent[3]  # the same send twice while on its way: one message
        assert [sent[0].seq, sent[2].seq, sent[4].seq] == [5, 6, 7]
        stored = await m.history("alice", group.id, after_seq=0, limit=200)
        assert [x.seq for x in stored] == list(range(1, 8))
    finally:
        await stop(stack)


async def test_two_nodes_writing_one_conversation_both_progress(store: Store) -> None:
    """Fairness: the store gives the seqs, so neither node's sends are refused."""
    a = await build_stack(store)
    b = await build_stack(store)  # a second node: own registry, own actor for the group
    try:
        group = await a.messaging.create_group("alice", "Contended", ["bob", "carol", "dan"])

        async def sender(node: Stack, user: str) -> list[int]:
            seqs = []
            for n in range(20):  # no retries: any refusal fails the test
                seqs.append((await node.messaging.send(user, group.id, text(f"{user}-{n}"))).seq)
            return seqs

        results = await asyncio.gather(
            sender(a, "alice"), sender(a, "bob"), sender(b, "carol"), sender(b, "dan")
        )
        for seqs in results:
            assert seqs == sorted(seqs)  # each client's messages in the order sent
        assert sorted(s for seqs in results for s in seqs) == list(range(1, 81))
        stored = await a.messaging.history("alice", group.id, after_seq=0, limit=200)
        assert [x.seq for x in stored] == list(range(1, 81))
    finally:
        await stop(a)
        await stop(b)
