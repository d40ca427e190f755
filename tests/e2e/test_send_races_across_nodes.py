"""An end-to-end send on node A racing a member added through node B's actor.

Two nodes share one store (and one broker): A checks the devices of a send against the
members its conversation actor holds, stores the envelopes, and hands the draft to its
actor; at that exact point B adds a member through its own actor. A's actor has not heard
of it (B's ``member_`` event is held on its way to A, as a slow or lost event is), so its
own check passes: only the store, judging the membership version under the conversation's
row lock, stands between the message and a member without an envelope. Run on both stores
with the in-process broker, and on PostgreSQL with Redis between the nodes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from actors.broker import Broker, Handler, Subscription
from actors.e2e.model import Envelope
from actors.e2e.ports import KeyStore
from actors.errors import Reason, WhisprError
from actors.events import decode_event
from actors.model import Member
from actors.ports import Store
from tests.actors.conftest import Stack, build_stack
from tests.e2e.test_send_races import Interleaved, _draft, _envelope, _no_contacts, _waiting
from tests.services import PgSchema
from whispr.broker import MemoryBroker, RedisBroker
from whispr.store.postgres import PostgresStore


class HeldMembership:
    """A node's broker that holds back the ``member_`` events it delivers while held."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.node_id = inner.node_id
        self.held: list[Callable[[], None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def publish(self, topic: str, payload: bytes) -> None:
        self.inner.publish(topic, payload)

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        def deliver(delivered_topic: str, payload: bytes) -> None:
            held = self.held
            if held is not None and decode_event(payload).name.startswith("member_"):
                held.append(lambda: handler(delivered_topic, payload))
            else:
                handler(delivered_topic, payload)

        return await self.inner.subscribe(topic, deliver)

    def release(self) -> int:
        """Deliver what was held; how many events that was."""
        held, self.held = self.held or [], None
        for deliver in held:
            deliver()
        return len(held)


class Counted(Interleaved):
    """The interleaved key directory, counting the envelopes stored (one per device check
    passed)."""

    kept = 0

    async def keep_envelopes(
        self, conversation_id: str, sender_id: str, client_id: str, envelopes: Sequence[Envelope]
    ) -> None:
        self.kept += 1
        await super().keep_envelopes(conversation_id, sender_id, client_id, envelopes)


class Nodes:
    """Node A (whose sends are interleaved) and node B, on one store."""

    def __init__(self, a: Stack, b: Stack, directory: Counted, a_broker: HeldMembership):
        self.a, self.b, self.directory, self.a_broker = a, b, directory, a_broker


@asynccontextmanager
async def two_nodes(store: Store, a_inner: Broker, b_broker: Broker) -> AsyncIterator[Nodes]:
    a_broker = HeldMembership(a_inner)
    # A re-reads its members only when told (or refused): never by age during the test.
    a = await build_stack(store, cast(Any, a_broker), members_max_age_s=3_600.0)
    b = await build_stack(store, cast(Any, b_broker))
    directory = Counted(cast(KeyStore, store), cast(Any, a_broker), _no_contacts, lambda: 1e3)
    a.messaging.e2e = directory
    try:
        yield Nodes(a, b, directory, a_broker)
    finally:
        for node in (a, b):
            node.supervisor.stop(block=False)
            await node.supervisor.wait_exit()


async def _group_known_to_a(nodes: Nodes, *devices: tuple[str, str]) -> str:
    """alice's group with bob, its actor running on A; every device named registered."""
    for user_id, device_id in devices:
        await nodes.directory.register_device(user_id, device_id, 7, device_id)
    group = await nodes.a.messaging.create_group("alice", "Team", ["bob"])
    assert {m.user_id for m in await nodes.a.messaging.members("alice", group.id)} == {
        "alice",
        "bob",
    }
    return group.id


def _added_through_b(nodes: Nodes, conversation_id: str, user_id: str) -> None:
    async def add() -> None:
        nodes.a_broker.held = []  # from here A does not hear of membership changes
        await nodes.b.messaging.add_members("alice", conversation_id, [user_id])

    nodes.directory.between = add


async def _a_member_with_devices_added_through_b(nodes: Nodes) -> None:
    a = nodes.a.messaging
    conversation_id = await _group_known_to_a(
        nodes, ("alice", "a1"), ("bob", "b1"), ("carol", "c1")
    )
    _added_through_b(nodes, conversation_id, "carol")
    with pytest.raises(WhisprError) as refused:
        await a.send(
            "alice", conversation_id, _draft("m1", [_envelope("bob", "b1", 7)]), device_id="a1"
        )
    # The store refused the message A's actor took, and the check ran again on the members
    # read afresh: carol's device is missing. Nothing was stored for it.
    assert refused.value.reason is Reason.MISMATCHED_DEVICES
    assert refused.value.details["missing"] == {"carol": ["c1"]}
    assert await nodes.a.store.find_by_client_id(conversation_id, "alice", "m1") is None
    assert await _waiting(nodes.directory, conversation_id, "m1") == 0
    # A's actor had not heard of carol by the broker: its own check could not catch it.
    assert await _held_member_events(nodes) >= 1
    sent = await a.send(
        "alice",
        conversation_id,
        _draft("m1", [_envelope("bob", "b1", 7), _envelope("carol", "c1", 7)]),
        device_id="a1",
    )
    assert sent.seq > 0
    carol = await nodes.directory.keys.device_envelopes(
        conversation_id, "carol", "c1", [("alice", "m1")], 1_000.0
    )
    assert len(carol) == 1


async def _a_member_without_devices_added_through_b(nodes: Nodes) -> None:
    a = nodes.a.messaging
    conversation_id = await _group_known_to_a(nodes, ("alice", "a1"), ("bob", "b1"))
    _added_through_b(nodes, conversation_id, "dave")
    sent = await a.send(
        "alice", conversation_id, _draft("m1", [_envelope("bob", "b1", 7)]), device_id="a1"
    )
    # Refused by the store once, checked again against the members with dave (nothing to
    # encrypt for him), then written after his addition in the conversation's order.
    assert nodes.directory.kept == 2
    page = await nodes.a.store.page_messages(conversation_id, after_seq=0, limit=50)
    added = [m.seq for m in page if m.metadata.get("event") == "member_added"]
    assert added
    assert max(added) < sent.seq
    assert await _waiting(nodes.directory, conversation_id, "m1") == 1
    assert await _held_member_events(nodes) >= 1


async def _held_member_events(nodes: Nodes) -> int:
    """Wait for B's ``member_`` events to reach A (through Redis, soon after), then deliver
    them: how many A had not heard of."""
    for _ in range(500):
        if nodes.a_broker.held:
            break
        await asyncio.sleep(0.01)
    return nodes.a_broker.release()


Scenario = Callable[[Nodes], Any]
SCENARIOS: Sequence[Scenario] = (
    _a_member_with_devices_added_through_b,
    _a_member_without_devices_added_through_b,
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.strip("_"))
async def test_in_process_nodes_on_one_store(store: Store, scenario: Scenario) -> None:
    broker = MemoryBroker()
    async with two_nodes(store, broker, broker) as nodes:
        await scenario(nodes)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.strip("_"))
async def test_nodes_on_postgresql_and_redis(
    pg_schema: PgSchema, redis_url: str, scenario: Scenario
) -> None:
    store = PostgresStore(pg_schema.base_url, server_settings=pg_schema.server_settings)
    await store.open()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    brokers = [RedisBroker(redis_url, node_id=n, prefix=prefix) for n in ("node-a", "node-b")]
    try:
        await store.migrate()
        for broker in brokers:
            await broker.open()
        async with two_nodes(store, brokers[0], brokers[1]) as nodes:
            await scenario(nodes)
    finally:
        for broker in brokers:
            await broker.close()
        await store.close()


async def test_a_version_unread_after_a_change_is_read_before_the_next_check(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store away just after A's actor added a member: the addition stands, the actor
    holds no version it could trust, and the next end-to-end send is checked against the
    members and version read afresh, never against a guessed version."""
    broker = MemoryBroker()
    async with two_nodes(store, broker, broker) as nodes:
        a = nodes.a.messaging
        conversation_id = await _group_known_to_a(
            nodes, ("alice", "a1"), ("bob", "b1"), ("carol", "c1")
        )
        read = store.versioned_members

        async def away(_conversation_id: str) -> tuple[list[Member], int]:
            raise WhisprError(Reason.UNAVAILABLE, "the message store is unavailable")

        monkeypatch.setattr(store, "versioned_members", away)
        added = await a.add_members("alice", conversation_id, ["carol"])
        assert [m.user_id for m in added] == ["carol"]
        monkeypatch.setattr(store, "versioned_members", read)
        envelopes = [_envelope("bob", "b1", 7), _envelope("carol", "c1", 7)]
        sent = await a.send("alice", conversation_id, _draft("m1", envelopes), device_id="a1")
        assert sent.seq > 0
        assert nodes.directory.kept == 1  # one check, against the members read again
