"""A node's messaging stack without the network: real stores, in-process broker."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from actors.conversation import ConversationDeps
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from actors.ports import Store
from supervisors import ChildSpec, DynamicSupervisor, Ref, Registry
from supervisors.batching import Batcher
from whispr.broker import MemoryBroker


@dataclass
class Stack:
    messaging: Messaging
    store: Store
    broker: MemoryBroker
    registry: Registry
    supervisor: Ref[Any]


async def build_stack(
    store: Store,
    broker: MemoryBroker | None = None,
    *,
    members_max_age_s: float | None = None,
    **supervisor_options: Any,
) -> Stack:
    broker = broker or MemoryBroker()
    options = {"max_restarts": 1000, "max_seconds": 1.0, **supervisor_options}
    supervisor = DynamicSupervisor.start(**options)
    await supervisor.started()
    registry = Registry()
    deps = ConversationDeps(
        store=store,
        broker=broker,
        commit=Batcher[Message, InsertResult](store.insert_messages),
    )
    if members_max_age_s is not None:
        deps = dataclasses.replace(deps, members_max_age_s=members_max_age_s)

    async def start_child(spec: ChildSpec) -> Ref[Any]:
        ref: Ref[Any] = await supervisor.proxy().start_child(spec)
        return ref

    messaging = Messaging(deps, registry=registry, start_child=start_child)
    return Stack(messaging, store, broker, registry, supervisor)


@pytest.fixture
async def stack(store: Store) -> AsyncIterator[Stack]:
    built = await build_stack(store)
    yield built
    built.supervisor.stop(block=False)
    await built.supervisor.wait_exit()
