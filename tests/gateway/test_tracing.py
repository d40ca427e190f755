"""One message's path is one trace, across two nodes over real Redis and PostgreSQL.

Two nodes in this process (so one in-memory exporter sees both; the spans made on each are
told apart by ``whispr.node``, set on the remote delivery) share a database schema and a Redis
prefix. A message sent by a client of node A to a member connected to node B must give spans
with one trace id from A's push to B's delivery, and a broker event with its ``traceparent``;
an unsampled message's broker event must have no trace at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from actors.events import conversation_topic, decode_event, trace_of
from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from tests.tracing import Recorded, recorded

pytestmark = pytest.mark.services


@pytest.fixture
async def two_nodes(postgres_url: str, redis_url: str) -> AsyncIterator[list[RunningNode]]:
    async with services.private_schema(postgres_url) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("tracing"),
        }
        nodes = [await start_node({**env, "WHISPR_NODE_NAME": unique(n)}) for n in "ab"]
        try:
            yield nodes
        finally:
            for running in nodes:
                await stop_tree(running.root, deadline=10)


def _one(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


async def test_a_message_sent_on_one_node_and_delivered_on_another_is_one_trace(
    two_nodes: list[RunningNode],
) -> None:
    a, b = two_nodes
    spans: Recorded = recorded()
    seen_on_b: list[bytes] = []
    async with a.client("ada") as ada, b.client("bob") as bob:
        await ada.join("user:ada")
        created = await ada.push(
            "user:ada", "create_conversation", {"kind": "direct", "with_user": "bob"}
        )
        conversation_id = created["conversation"]["id"]
        topic = conversation_topic(conversation_id)
        await ada.join(topic)
        await bob.join(topic, {"last_seq": 0})
        subscription = await b.node.broker.get().subscribe(
            topic, lambda _topic, data: seen_on_b.append(data)
        )

        # Unsampled: no span past the push's decision, no trace in the event.
        await ada.push(topic, "send_message", {"client_id": "plain", "content": "hi"})
        await bob.next_event(topic, "new_message")
        assert spans.spans() == []

        spans.switch.on = True
        reply = await ada.push(topic, "send_message", {"client_id": "traced", "content": "yo"})
        spans.switch.on = False
        event = await bob.next_event(topic, "new_message")
        assert event.payload["message"]["seq"] == reply["seq"]
        subscription.cancel()

    plain, traced = (decode_event(data) for data in seen_on_b if b"new_message" in data[:12])
    assert plain.trace == ""
    assert trace_of(seen_on_b[0]) == ""
    assert seen_on_b[0].count(b"\n") == 1  # name and payload, nothing more

    push = _one(spans.named("push send_message"))
    send = _one(spans.named("conversation send"))
    commit = _one(spans.named("group commit"))
    publish = _one(spans.named("publish conversation:"))
    deliver = _one(spans.named("deliver conversation:"))
    assert deliver.attributes is not None
    assert deliver.attributes["whispr.node"] == b.settings.node_name
    trace_ids = {s.context.trace_id for s in (push, send, commit, publish, deliver)}
    assert trace_ids == {push.context.trace_id}
    # Each hop is the child of the one before it; the remote delivery of the publish.
    assert send.parent is not None
    assert send.parent.span_id == push.context.span_id
    assert commit.parent is not None
    assert commit.parent.span_id == send.context.span_id
    assert publish.parent is not None
    assert publish.parent.span_id == send.context.span_id
    assert deliver.parent is not None
    assert deliver.parent.span_id == publish.context.span_id
    assert deliver.parent.is_remote
    # W3C traceparent: version, trace id, the publish span's id, flags (sampled).
    version, trace_id, span_id, flags = traced.trace.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{push.context.trace_id:032x}",
        f"{publish.context.span_id:016x}",
    )
    assert int(flags, 16) & 1


async def test_a_catch_up_join_is_a_span(two_nodes: list[RunningNode]) -> None:
    a, b = two_nodes
    spans = recorded()
    async with a.client("ada") as ada:
        await ada.join("user:ada")
        created = await ada.push(
            "user:ada", "create_conversation", {"kind": "direct", "with_user": "bob"}
        )
        topic = conversation_topic(created["conversation"]["id"])
        await ada.join(topic)
        await ada.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
    async with b.client("bob") as bob:
        spans.switch.on = True
        await bob.join(topic, {"last_seq": 0})
        await bob.next_event(topic, "new_message")  # caught up
        spans.switch.on = False
        # The span ends once the catch-up has gone live, just after its last frame.
        for _ in range(1000):
            if spans.named("join conversation"):
                break
            await asyncio.sleep(0.01)
    join = _one(spans.named("join conversation"))
    assert join.attributes is not None
    assert join.attributes["whispr.topic"] == topic
    assert [event.name for event in join.events] == ["joined"]
