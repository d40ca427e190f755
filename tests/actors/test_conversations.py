"""Conversations end to end through the actors, on both stores."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.events import decode_event, payload_of
from actors.model import Attachment
from tests.actors.conftest import Stack, build_stack


async def refused(call: Any, reason: Reason) -> WhisprError:
    with pytest.raises(WhisprError) as caught:
        await call
    assert caught.value.reason is reason, caught.value
    return caught.value


def text(client_id: str, content: str = "hi") -> Draft:
    return Draft(client_id=client_id, content=content)


async def test_send_orders_messages_and_is_idempotent(stack: Stack) -> None:
    m = stack.messaging
    group = await m.create_group("alice", "Team", ["bob", "carol"])
    first = await m.send("alice", group.id, text("c1", "one"))
    second = await m.send("bob", group.id, text("c2", "two"))
    again = await m.send("alice", group.id, text("c1", "one (retried)"))
    assert (first.seq, second.seq) == (1, 2)
    assert again == first
    history = await m.history("carol", group.id)
    assert [(x.seq, x.content) for x in history] == [(1, "one"), (2, "two")]


async def test_events_are_published_to_the_conversation_topic(stack: Stack) -> None:
    m = stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    seen: list[tuple[str, Any]] = []
    await stack.broker.subscribe(
        f"conversation:{group.id}",
        lambda t, d: seen.append((decode_event(d).name, payload_of(decode_event(d)))),
    )
    sent = await m.send("bob", group.id, text("c1"))
    await m.react("alice", group.id, sent.seq, "👍")
    await m.mark_read("alice", group.id, sent.seq)
    names = [name for name, _ in seen]
    assert names == ["new_message", "reaction_changed", "read"]
    assert seen[0][1]["message"]["seq"] == 1


async def test_bad_input_is_refused_and_nothing_is_written(stack: Stack) -> None:
    m = stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    await refused(m.send("mallory", group.id, text("x")), Reason.NOT_MEMBER)
    await refused(m.send("alice", group.id, text("big", "x" * 10_001)), Reason.TOO_LARGE)
    await refused(m.send("alice", group.id, text("")), Reason.INVALID)
    await refused(m.send("alice", group.id, text("nul", "a\x00b")), Reason.INVALID)
    await refused(m.send("alice", group.id, Draft(client_id="e", content="")), Reason.INVALID)
    bad_file = Attachment(id="f", mime_type="not a type", size=1, name="a")
    await refused(
        m.send("alice", group.id, Draft(client_id="m", kind="media", attachments=(bad_file,))),
        Reason.INVALID,
    )
    await refused(m.send("alice", "no-such-conversation", text("x")), Reason.NOT_FOUND)
    assert await m.history("alice", group.id) == []
    sent = await m.send("alice", group.id, text("ok", "ok"))
    await refused(m.edit("bob", group.id, sent.seq, "mine now"), Reason.FORBIDDEN)
    await refused(m.react("bob", group.id, sent.seq, "not an emoji"), Reason.INVALID)
    await refused(m.pin("bob", group.id, sent.seq), Reason.FORBIDDEN)
    await refused(m.add_members("bob", group.id, ["eve"]), Reason.FORBIDDEN)
    await refused(m.edit("alice", group.id, 99, "x"), Reason.NOT_FOUND)
    (kept,) = await m.history("alice", group.id)
    assert (kept.content, kept.reactions, kept.pinned) == ("ok", {}, False)


async def test_edit_delete_react_pin_and_membership(stack: Stack) -> None:
    m = stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    sent = await m.send("bob", group.id, text("c1", "typo"))
    edited = await m.edit("bob", group.id, sent.seq, "fixed")
    assert edited.content == "fixed"
    assert edited.edited_at is not None
    reacted = await m.react("alice", group.id, sent.seq, "🎉")
    assert reacted.reactions == {"🎉": ("alice",)}
    assert (await m.pin("alice", group.id, sent.seq)).pinned
    await m.add_members("alice", group.id, ["carol"])
    from_carol = await m.send("carol", group.id, text("c3", "hello all"))
    deleted = await m.delete("alice", group.id, from_carol.seq)  # admins moderate
    assert deleted.deleted
    assert deleted.content == ""
    await m.remove_member("alice", group.id, "carol")
    await refused(m.send("carol", group.id, text("c4")), Reason.NOT_MEMBER)
    kinds = [x.kind for x in await m.history("alice", group.id)]
    assert "system" in kinds  # member added/removed are recorded in order


async def test_only_drafts_the_conversation_would_take_are_screened(stack: Stack) -> None:
    m = stack.messaging
    screened: list[tuple[str, str]] = []

    async def screen(user_id: str, conversation_id: str, draft: Draft) -> None:
        screened.append((user_id, draft.client_id))

    m.screen = screen
    group = await m.create_group("alice", "Team", ["bob"])
    announcements = await m.create_group("alice", "News", ["bob"])
    await stack.store.update_conversation(announcements.id, settings={"who_can_post": "admins"})
    # A non-member, a member without posting rights, an unknown conversation: refused
    # before the sibling services see anything.
    await refused(m.send("mallory", group.id, text("x")), Reason.NOT_MEMBER)
    await refused(m.edit("mallory", group.id, 1, "x"), Reason.NOT_MEMBER)
    await refused(m.send("bob", announcements.id, text("y")), Reason.FORBIDDEN)
    await refused(m.send("alice", "no-such-conversation", text("z")), Reason.NOT_FOUND)
    assert screened == []
    sent = await m.send("bob", group.id, text("ok"))
    await m.edit("bob", group.id, sent.seq, "ok!")
    await m.send("alice", announcements.id, text("news"))
    assert screened == [("bob", "ok"), ("bob", f"edit-{sent.seq}"), ("alice", "news")]


async def test_direct_conversations_are_one_per_pair(stack: Stack) -> None:
    m = stack.messaging
    first = await m.direct("ann", "ben")
    second = await m.direct("ben", "ann")
    assert first.id == second.id
    await refused(m.add_members("ann", first.id, ["cat"]), Reason.FORBIDDEN)
    await refused(m.direct("ann", "ann"), Reason.INVALID)


async def test_read_state_and_unread_counts(stack: Stack) -> None:
    m = stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    for n in range(5):
        await m.send("alice", group.id, text(f"c{n}"))
    assert await m.unread_counts("bob") == {group.id: 5}
    assert await m.mark_read("bob", group.id, 3) == 3
    assert await m.mark_read("bob", group.id, 1) == 3  # never backwards
    assert await m.mark_read("bob", group.id, 999) == 5  # capped at the last seq
    assert await m.unread_counts("bob") == {group.id: 0}
    listing = await m.list_conversations("bob")
    assert listing[0].conversation.id == group.id
    assert listing[0].unread_count == 0


@pytest.mark.chaos
async def test_killing_actors_mid_send_loses_nothing_acknowledged(stack: Stack) -> None:
    m = stack.messaging
    group = await m.create_group("alice", "Chaos", ["bob", "carol"])
    acknowledged: dict[str, int] = {}
    stop = asyncio.Event()

    async def sender(user: str) -> None:
        loop = asyncio.get_running_loop()
        for n in range(60):
            client_id = f"{user}-{n}"
            # A client retries until acknowledged: for as long as it takes on a loaded
            # machine (each kill costs a restart and its reads), within a bound.
            give_up = loop.time() + 30.0
            while True:
                try:
                    message = await m.send(user, group.id, text(client_id, client_id))
                except WhisprError as exc:
                    if exc.reason is not Reason.UNAVAILABLE:
                        raise
                    if loop.time() > give_up:
                        raise AssertionError(f"{client_id} never acknowledged") from exc
                    await asyncio.sleep(0.001)
                    continue
                acknowledged[client_id] = message.seq
                break

    async def killer() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            ref = stack.registry.whereis(("conversation", group.id))
            # Mid-send: a restarted actor is registered while it loads, not killed then.
            if ref is not None and ref.has_started and rng.random() < 0.5:
                ref.kill("chaos")
            await asyncio.sleep(rng.uniform(0, 0.004))

    chaos = asyncio.create_task(killer())
    await asyncio.gather(*(sender(u) for u in ("alice", "bob", "carol")))
    stop.set()
    await chaos
    stored = await m.history("alice", group.id, after_seq=0, limit=200)
    assert [x.seq for x in stored] == list(range(1, len(stored) + 1))  # gap-free
    contents = [x.content for x in stored]
    assert len(contents) == len(set(contents)) == 180  # each exactly once
    assert {x.content: x.seq for x in stored} == acknowledged


async def test_two_nodes_on_one_store_keep_one_order(stack: Stack) -> None:
    other = await build_stack(stack.store)  # a second node: own registry, own actors
    try:
        group = await stack.messaging.create_group("alice", "Shared", ["bob"])

        async def burst(node: Stack, user: str) -> list[int]:
            seqs = []
            for n in range(40):
                sent = await node.messaging.send(user, group.id, text(f"{user}-{n}"))
                seqs.append(sent.seq)
            return seqs

        a, b = await asyncio.gather(burst(stack, "alice"), burst(other, "bob"))
        assert sorted(a + b) == list(range(1, 81))
        stored = await stack.messaging.history("alice", group.id, after_seq=0, limit=200)
        assert [x.seq for x in stored] == list(range(1, 81))
    finally:
        other.supervisor.stop(block=False)
        await other.supervisor.wait_exit()


async def test_an_idle_actor_passivates_and_the_next_call_starts_a_fresh_one(
    stack: Stack,
) -> None:
    from dataclasses import replace

    stack.messaging.deps = replace(stack.messaging.deps, idle_timeout_s=0.05)
    m = stack.messaging
    group = await m.create_group("alice", "Team", ["bob"])
    await m.send("alice", group.id, text("c1"))
    first = stack.registry.whereis(("conversation", group.id))
    assert first is not None
    assert await asyncio.wait_for(first.wait_exit(), timeout=5) is not None
    assert stack.registry.whereis(("conversation", group.id)) is None
    again = await m.send("bob", group.id, text("c2"))
    assert again.seq == 2  # the fresh actor reloaded the last seq from the store
    second = stack.registry.whereis(("conversation", group.id))
    assert second is not None
    assert second is not first


@contextlib.asynccontextmanager
async def _two_nodes(store: Any, redis_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    """Two stacks on one store, each with its own Redis broker: two nodes of a cluster."""
    from whispr.broker import RedisBroker

    prefix = f"t{uuid.uuid4().hex[:8]}"
    brokers = [RedisBroker(redis_url, node_id=f"node{i}", prefix=prefix) for i in range(2)]
    for broker in brokers:
        await broker.open()
    nodes = [await build_stack(store, broker) for broker in brokers]  # type: ignore[arg-type]
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.supervisor.stop(block=False)
            await node.supervisor.wait_exit()
        for broker in brokers:
            await broker.close()


async def test_two_nodes_over_redis_see_each_others_events_and_membership(
    store: Any, redis_url: str
) -> None:
    async with _two_nodes(store, redis_url) as (a, b):
        group = await a.messaging.create_group("alice", "Cluster", ["bob"])
        await b.messaging.send("bob", group.id, text("warm"))  # b runs an actor too
        seen_on_b: list[str] = []
        await b.broker.subscribe(
            f"conversation:{group.id}", lambda _t, data: seen_on_b.append(decode_event(data).name)
        )
        await a.messaging.add_members("alice", group.id, ["carol"])
        sent = await a.messaging.send("alice", group.id, text("from a"))
        for _ in range(200):
            if "new_message" in seen_on_b and "member_added" in seen_on_b:
                break
            await asyncio.sleep(0.01)
        assert "member_added" in seen_on_b
        assert "new_message" in seen_on_b
        # b's actor learnt of carol through the broker: she may post there.
        for _ in range(200):
            try:
                from_carol = await b.messaging.send("carol", group.id, text("hi from b"))
                break
            except WhisprError as exc:
                if exc.reason is not Reason.NOT_MEMBER:
                    raise
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("node b never learnt that carol joined")
        assert from_carol.seq > sent.seq


async def test_a_read_cursor_can_reach_messages_sent_through_another_node(
    store: Any, redis_url: str
) -> None:
    async with _two_nodes(store, redis_url) as (a, b):
        group = await a.messaging.create_group("alice", "Cluster", ["bob"])
        assert await b.messaging.mark_read("bob", group.id, 0) == 0  # b runs an actor too
        sent = [await a.messaging.send("alice", group.id, text(f"m{n}")) for n in range(3)]
        # b's actor did not send these: it learns of their seqs from the broker, and bob's
        # cursor on b may move up to the last one (it used to stop at b's own last seq).
        for _ in range(200):
            cursor = await b.messaging.mark_read("bob", group.id, sent[-1].seq)
            if cursor == sent[-1].seq:
                break
            await asyncio.sleep(0.01)
        assert cursor == sent[-1].seq == 3


async def test_a_removal_whose_event_was_lost_is_seen_on_another_node_within_the_bound(
    store: Any,
) -> None:
    # Two nodes on one store whose brokers never reach each other: every event is lost.
    a = await build_stack(store, members_max_age_s=0.2)
    b = await build_stack(store, members_max_age_s=0.2)
    try:
        group = await a.messaging.create_group("alice", "Lost events", ["bob"])
        await b.messaging.send("bob", group.id, text("warm"))  # b's actor has bob
        await a.messaging.remove_member("alice", group.id, "bob")
        # At once, b's list still has bob: the store, where the send is written, refuses it.
        await refused(b.messaging.send("bob", group.id, text("at once")), Reason.NOT_MEMBER)
        await asyncio.sleep(0.3)  # past the bound: b reads the member list again
        await refused(b.messaging.history("bob", group.id), Reason.NOT_MEMBER)
        await refused(b.messaging.conversation_at("bob", group.id), Reason.NOT_MEMBER)
        await refused(b.messaging.mark_read("bob", group.id, 1), Reason.NOT_MEMBER)
        await refused(b.messaging.send("bob", group.id, text("after")), Reason.NOT_MEMBER)
        sent_by_bob = [
            m.client_id
            for m in await a.messaging.history("alice", group.id)
            if m.sender_id == "bob"
        ]
        assert sent_by_bob == ["warm"]
    finally:
        for node in (a, b):
            node.supervisor.stop(block=False)
            await node.supervisor.wait_exit()
