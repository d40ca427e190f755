"""Suspicious activity over real sockets: each pattern detected, its configured response
applied (throttle, report, disconnect, record), an audit record kept; on both stores, and
a throttle held across two nodes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from tests.gateway.test_audit_events import records_of
from tests.siblings.conftest import StandIn
from whispr.audit import AuditKind, AuditRecord
from whispr.client import ReplyError

THRESHOLD = 2
THROTTLE_S = 30
#: Every pattern out of reach; each test brings its own down to ``THRESHOLD``.
BASE_ENV = {
    "WHISPR_ABUSE_DUPLICATES": "1000",
    "WHISPR_ABUSE_CREATIONS": "1000",
    "WHISPR_ABUSE_JOINS": "1000",
    "WHISPR_ABUSE_REFUSALS": "1000",
    "WHISPR_ABUSE_THROTTLE_S": str(THROTTLE_S),
}


def _watch(pattern: str, response: str) -> dict[str, str]:
    """The settings bringing ``pattern`` within reach, with ``response``."""
    upper = pattern.upper()
    return {f"WHISPR_ABUSE_{upper}": str(THRESHOLD), f"WHISPR_ABUSE_{upper}_RESPONSE": response}


CREATIONS_THROTTLE = _watch("creations", "throttle")

StartNode = Callable[[dict[str, str]], Awaitable[RunningNode]]


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    """A moderation service (and the other siblings) to report to."""
    siblings = StandIn()
    await siblings.start()
    yield siblings
    await siblings.stop()


@contextlib.asynccontextmanager
async def _starter(
    request: pytest.FixtureRequest, stand_in: StandIn, store: str
) -> AsyncIterator[StartNode]:
    """Starts nodes with the test's responses, reporting to ``stand_in``: on SQLite (a file
    each), or on PostgreSQL and Redis (one schema and prefix: the nodes form one cluster)."""
    env = {**BASE_ENV, "WHISPR_MODERATION_SERVICE_URL": stand_in.address}
    started: list[RunningNode] = []
    async with contextlib.AsyncExitStack() as stack:
        if store == "embedded":
            tmp_path: Path = request.getfixturevalue("tmp_path")

            def store_env(i: int) -> dict[str, str]:
                return {"WHISPR_SQLITE_PATH": str(tmp_path / f"n{i}.db")}

        else:
            redis_url = request.getfixturevalue("redis_url")
            postgres_url = request.getfixturevalue("postgres_url")
            schema = await stack.enter_async_context(services.private_schema(postgres_url))
            prefix = unique("t")

            def store_env(i: int) -> dict[str, str]:
                return {
                    "WHISPR_DATABASE_URL": schema.url,
                    "WHISPR_REDIS_URL": redis_url,
                    "WHISPR_REDIS_PREFIX": prefix,
                    "WHISPR_NODE_NAME": unique(f"node{i}"),
                }

        async def start_with(responses: dict[str, str]) -> RunningNode:
            running = await start_node({**env, **store_env(len(started)), **responses})
            started.append(running)
            return running

        try:
            yield start_with
        finally:
            for running in started:
                await stop_tree(running.root, deadline=10)


@pytest.fixture(params=["embedded", pytest.param("services", marks=pytest.mark.services)])
async def start(request: pytest.FixtureRequest, stand_in: StandIn) -> AsyncIterator[StartNode]:
    async with _starter(request, stand_in, request.param) as starter:
        yield starter


@pytest.fixture
async def start_in_cluster(
    request: pytest.FixtureRequest, stand_in: StandIn, postgres_url: str, redis_url: str
) -> AsyncIterator[StartNode]:
    async with _starter(request, stand_in, "services") as starter:
        yield starter


async def _suspicious(node: RunningNode, user: str, pattern: str) -> AuditRecord:
    records = await records_of(node, user, AuditKind.SUSPICIOUS_ACTIVITY)
    matching = [r for r in records if r.details["pattern"] == pattern]
    assert matching, f"no {pattern} record among {records}"
    return matching[0]


async def _groups(node: RunningNode, owner: str, count: int) -> list[str]:
    messaging = node.node.messaging.get()
    return [(await messaging.create_group(owner, "t", [unique("m")])).id for _ in range(count)]


async def test_the_same_content_to_many_conversations_throttles(start: StartNode) -> None:
    node = await start(_watch("duplicates", "throttle"))
    ada = unique("ada")
    cids = await _groups(node, ada, THRESHOLD + 1)
    async with node.client(ada) as client:
        for cid in cids:
            await client.join(f"conversation:{cid}")
        for i, cid in enumerate(cids[:THRESHOLD]):
            await client.push(
                f"conversation:{cid}", "send_message", {"client_id": f"s{i}", "content": "BUY NOW"}
            )
        # The same content in one more conversation: refused, and the user is throttled.
        last = f"conversation:{cids[-1]}"
        with pytest.raises(ReplyError) as refused:
            await client.push(last, "send_message", {"client_id": "s9", "content": "BUY NOW"})
        assert refused.value.reason == "rate_limited"
        assert refused.value.response["event"] == "duplicates"
        assert refused.value.response["retry_after"] == THROTTLE_S
        # Anything limited is refused now, other content included, until the throttle ends.
        with pytest.raises(ReplyError) as throttled:
            await client.push(last, "send_message", {"client_id": "s10", "content": "hello"})
        assert throttled.value.reason == "rate_limited"
        assert 0 < throttled.value.response["retry_after"] <= THROTTLE_S
        with pytest.raises(ReplyError):
            await client.push(last, "typing_start", {})
        # Reading is not limited.
        assert (await client.push(last, "history", {}))["messages"] == []
    record = await _suspicious(node, ada, "duplicates")
    assert record.details["response"] == "throttle"
    assert record.details["conversations"] == THRESHOLD + 1
    assert "BUY NOW" not in str(record.details)  # the content itself is never kept


async def test_a_creation_flood_is_reported_to_moderation(
    start: StartNode, stand_in: StandIn
) -> None:
    node = await start(_watch("creations", "report"))
    ada = unique("ada")
    async with node.client(ada, "phone") as client:
        await client.join(f"user:{ada}")
        for i in range(THRESHOLD + 2):
            payload = {"kind": "group", "title": f"g{i}", "members": [unique("m")]}
            # Reported, not refused: every creation goes through.
            await client.push(f"user:{ada}", "create_conversation", payload)
    assert len(await node.node.messaging.get().list_conversations(ada)) == THRESHOLD + 2
    for _ in range(100):
        if stand_in.reports:
            break
        await asyncio.sleep(0.05)
    # One report per window, however many matches follow.
    [report] = [r for r in stand_in.reports if r.user_id == ada]
    assert report.pattern == "creations"
    assert report.device_id == "phone"
    assert report.node == node.settings.node_name
    record = await _suspicious(node, ada, "creations")
    assert record.details["response"] == "report"


async def test_a_join_flood_disconnects(start: StartNode) -> None:
    node = await start(_watch("joins", "disconnect"))
    ada = unique("ada")
    cids = await _groups(node, ada, THRESHOLD + 1)
    async with node.client(ada) as client:
        for cid in cids[:THRESHOLD]:
            await client.join(f"conversation:{cid}")
        with pytest.raises((ReplyError, ConnectionError, TimeoutError)):
            await client.join(f"conversation:{cids[-1]}", timeout=5)
        closed = await asyncio.wait_for(client.wait_closed(), 5)
    assert closed == (1008, "suspicious activity")
    record = await _suspicious(node, ada, "joins")
    assert record.details["response"] == "disconnect"


async def test_repeated_refusals_disconnect_by_default(start: StartNode) -> None:
    node = await start({"WHISPR_ABUSE_REFUSALS": str(THRESHOLD)})
    ada, bob = unique("ada"), unique("bob")
    theirs = await _groups(node, bob, THRESHOLD + 1)
    async with node.client(ada) as client:
        for cid in theirs:
            with pytest.raises((ReplyError, ConnectionError)):
                await client.join(f"conversation:{cid}")  # not a member: refused
        closed = await asyncio.wait_for(client.wait_closed(), 5)
    assert closed == (1008, "suspicious activity")
    record = await _suspicious(node, ada, "refusals")
    assert record.details["error"] == "not_member"


async def test_record_alone_lets_everything_through(start: StartNode) -> None:
    node = await start(_watch("joins", "record"))
    ada = unique("ada")
    cids = await _groups(node, ada, THRESHOLD + 2)
    async with node.client(ada) as client:
        for cid in cids:
            await client.join(f"conversation:{cid}")
        assert client.closed is None
    record = await _suspicious(node, ada, "joins")
    assert record.details["response"] == "record"


async def test_a_throttle_is_held_on_every_node(start_in_cluster: StartNode) -> None:
    a = await start_in_cluster(CREATIONS_THROTTLE)
    b = await start_in_cluster(CREATIONS_THROTTLE)
    ada = unique("ada")
    [cid] = await _groups(a, ada, 1)
    topic = f"conversation:{cid}"
    async with a.client(ada, "phone") as on_a, b.client(ada, "laptop") as on_b:
        await on_b.join(topic)
        await on_a.join(f"user:{ada}")
        outcomes = []
        for i in range(THRESHOLD + 1):
            payload = {"kind": "group", "title": f"g{i}", "members": [unique("m")]}
            try:
                await on_a.push(f"user:{ada}", "create_conversation", payload)
                outcomes.append("ok")
            except ReplyError as exc:
                outcomes.append(exc.reason)
        assert outcomes == ["ok"] * THRESHOLD + ["rate_limited"]
        # The device on the other node is throttled too.
        started = time.monotonic()
        with pytest.raises(ReplyError) as refused:
            await on_b.push(topic, "send_message", {"client_id": "x", "content": "hi"})
        assert refused.value.reason == "rate_limited"
        assert (
            refused.value.response["retry_after"] <= THROTTLE_S - (time.monotonic() - started) + 1
        )
    assert await b.node.messaging.get().history(ada, cid) == []
