"""The gateway over real sockets: connect, join, push, broadcast, catch-up, errors."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.events import encode_event
from actors.model import Message, Unsequenced
from supervisors import stop_tree
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.client import PhoenixClient, ReplyError


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _group(node: RunningNode, owner: str, *members: str) -> str:
    conversation = await node.node.messaging.get().create_group(owner, "t", list(members))
    return conversation.id


async def _pair_with_history(node: RunningNode, count: int) -> tuple[str, str]:
    """A conversation of two new users, ``count`` messages from the first: (second, topic)."""
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    messaging = node.node.messaging.get()
    for n in range(count):
        await messaging.send(ada, cid, Draft(client_id=f"m{n}", content=str(n)))
    return bob, f"conversation:{cid}"


async def test_ready_reports_a_dependency_that_does_not_answer_without_failing(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent() -> bool:
        await asyncio.sleep(30)  # a database that does not answer at all
        return True

    monkeypatch.setattr(node.node.store.get().store, "ping", silent)
    status, body = await asyncio.to_thread(_get, node.http + "/ready")
    assert (status, body) == (200, "ready\nstore: unavailable\nbroker: ok\n")


async def test_http_probes_answer_on_the_gateway_port(node: RunningNode) -> None:
    assert await asyncio.to_thread(_get, node.http + "/health") == (200, "ok\n")
    ready = (200, "ready\nstore: ok\nbroker: ok\n")
    assert await asyncio.to_thread(_get, node.http + "/ready") == ready
    ada = unique("ada")
    async with node.client(ada) as client:
        await client.join(f"user:{ada}")
    # A connection's frames are counted when it ends (or at the next tick), and the server
    # ends it after the client has gone: the metric shows once that teardown has run.
    for _ in range(50):
        status, body = await asyncio.to_thread(_get, node.http + "/metrics")
        if "whispr_gateway_messages" in body:
            break
        await asyncio.sleep(0.1)
    assert status == 200
    for metric in ["whispr_gateway_connects", "whispr_gateway_joins", "whispr_gateway_messages"]:
        assert metric in body, metric
    assert (await asyncio.to_thread(_get, node.http + "/nope"))[0] == 404


async def test_push_latency_is_a_histogram_in_seconds_by_known_event(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    async with node.client(ada) as a:
        await a.join(topic)
        await a.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
        with pytest.raises(ReplyError):
            await a.push(topic, f"made-up-{unique('e')}", {})
    _, body = await asyncio.to_thread(_get, node.http + "/metrics")

    def count(event: str, le: str) -> float:
        prefix = f'whispr_gateway_push_seconds_bucket{{event="{event}",le="{le}"}} '
        lines = body.splitlines()
        return max(float(line[len(prefix) :]) for line in lines if line.startswith(prefix))

    assert count("send_message", "+Inf") >= 1
    assert count("send_message", "0.0005") <= count("send_message", "10.0")  # buckets in seconds
    assert count("unknown", "+Inf") >= 1
    assert "made-up-" not in body


async def test_a_bad_token_is_refused_at_the_handshake(node: RunningNode) -> None:
    from websockets.exceptions import InvalidStatus

    for token in ["", "not-a-jwt", node.token("ada", ttl_s=-120)]:
        with pytest.raises(InvalidStatus) as caught:
            async with PhoenixClient.connect(node.url, token):
                pass
        assert caught.value.response.status_code == 401


async def test_members_exchange_messages_and_others_are_refused(node: RunningNode) -> None:
    ada, bob, eve = unique("ada"), unique("bob"), unique("eve")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob) as b, node.client(eve) as e:
        joined = await a.join(topic)
        assert joined["conversation"]["id"] == cid
        await b.join(topic)
        with pytest.raises(ReplyError) as refused:
            await e.join(topic)
        assert refused.value.reason == "not_member"
        with pytest.raises(ReplyError) as other_user:
            await e.join(f"user:{ada}")
        assert other_user.value.reason == "forbidden"

        reply = await a.push(topic, "send_message", {"client_id": "m1", "content": "hello"})
        assert reply["seq"] == 1
        event = await b.next_event(topic, "new_message")
        assert event.payload["message"]["content"] == "hello"
        assert event.payload["message"]["sender_id"] == ada
        # Retried with the same client id: the original message, not a new one.
        again = await a.push(topic, "send_message", {"client_id": "m1", "content": "hello"})
        assert again["seq"] == 1
        assert again["id"] == reply["id"]


def _connection_of(node: RunningNode, user_id: str) -> Any:
    """The node's one connection actor of ``user_id``."""
    [actor] = [
        ref._actor_weakref()
        for ref in node.node.gateway.get().ctx.connections
        if ref._actor_weakref().user_id == user_id
    ]
    return actor


class _CountingTransport:
    """A socket's transport that counts the calls writing to it (and passes everything on)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[int] = []  # frames per call

    def write(self, data: bytes) -> None:
        self.writes.append(1)
        self._transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes.append(len(chunks))
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_a_send_reply_and_its_broadcast_to_the_sender_leave_in_one_write(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        await b.join(topic)
        while bob not in (await a.next_event(topic, "presence_diff")).payload["joins"]:
            pass  # until nothing else is on its way to ada
        actor = _connection_of(node, ada)
        counting = actor.transport.ws.transport = _CountingTransport(actor.transport.ws.transport)
        for n in range(5):
            reply = await a.push(topic, "send_message", {"client_id": f"m{n}", "content": "hi"})
            assert (await a.next_event(topic, "new_message")).payload["message"]["seq"] == reply[
                "seq"
            ]
            await b.next_event(topic, "new_message")
        # One call per send, carrying both frames: the reply and the broadcast.
        assert counting.writes == [2] * 5


class _ClosedTransport(_CountingTransport):
    """A transport already closed underneath its socket: every write raises."""

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation: the handler is closed")

    def writelines(self, chunks: list[bytes]) -> None:
        raise RuntimeError("unable to perform operation: the handler is closed")


async def test_a_write_to_a_transport_closed_underneath_does_not_crash_the_connection(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        await b.join(topic)
        actor = _connection_of(node, bob)
        loop = asyncio.get_running_loop()
        unhandled: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
        real = actor.transport.ws.transport
        actor.transport.ws.transport = _ClosedTransport(real)
        try:
            await a.push(topic, "send_message", {"client_id": "m1", "content": "lost on the way"})
            await asyncio.sleep(0.05)  # bob's actor tried to write the broadcast, and failed
        finally:
            actor.transport.ws.transport = real
            loop.set_exception_handler(None)
        assert unhandled == []
        await a.push(topic, "send_message", {"client_id": "m2", "content": "hi"})
        event = await b.next_event(topic, "new_message")
        assert event.payload["message"]["content"] in {"lost on the way", "hi"}
        assert actor.actor_ref.is_alive()


@pytest.mark.parametrize("compression", ["off", "deflate"])
async def test_messages_reach_clients_with_and_without_compression(
    tmp_path: Path, compression: str
) -> None:
    running = await start_node(
        {"WHISPR_SQLITE_PATH": str(tmp_path / "node.db"), "WHISPR_COMPRESSION": compression}
    )
    try:
        ada, bob = unique("ada"), unique("bob")
        topic = f"conversation:{await _group(running, ada, bob)}"
        # The client offers permessage-deflate; the node takes it only when configured to.
        async with running.client(ada) as a, running.client(bob) as b:
            await a.join(topic)
            await b.join(topic)
            actor = _connection_of(running, ada)
            assert bool(actor.transport.ws.protocol.extensions) == (compression == "deflate")
            # A frame under 126 bytes, then one whose length takes 16 bits.
            for n, content in enumerate(["hi", "\u00e9" * 4000]):
                draft = {"client_id": f"m{n}", "content": content}
                reply = await a.push(topic, "send_message", draft)
                assert reply["seq"] == n + 1
                for client in (a, b):
                    event = await client.next_event(topic, "new_message")
                    assert event.payload["message"]["content"] == content
            page = await b.push(topic, "history", {"before_seq": 3, "limit": 10})
            assert [m["content"] for m in page["messages"]] == ["hi", "\u00e9" * 4000]
    finally:
        await stop_tree(running.root, deadline=10)


async def test_bad_pushes_get_clear_error_replies_and_write_nothing(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a:
        await a.join(topic)
        cases = [
            ("send_message", {"client_id": "x", "content": "x" * 10_001}, "too_large"),
            ("send_message", {"content": "no client id"}, "invalid"),
            ("send_message", {"client_id": "y", "content": "hi", "bogus": 1}, "invalid"),
            ("react", {"seq": 1, "emoji": "not an emoji"}, "invalid"),
            ("frobnicate", {}, "invalid"),
            ("edit_message", {"seq": 99, "content": "x"}, "not_found"),
        ]
        for event, payload, reason in cases:
            with pytest.raises(ReplyError) as refused:
                await a.push(topic, event, payload)
            assert refused.value.reason == reason, (event, refused.value.response)
        history = await a.push(topic, "history", {})
        assert history["messages"] == []
        with pytest.raises(ReplyError) as unmatched:
            await a.push("conversation:elsewhere", "send_message", {"client_id": "z"})
        assert unmatched.value.reason == "unmatched topic"


async def test_join_with_last_seq_catches_up_in_order_before_live(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    messaging = node.node.messaging.get()
    # More than two catch-up pages (sent through the API: clients are rate limited).
    await asyncio.gather(
        *(messaging.send(ada, cid, Draft(client_id=f"m{n}", content=str(n))) for n in range(451))
    )
    async with node.client(bob) as b:
        joined = await b.join(topic, {"last_seq": 10})
        assert joined["last_seq"] == 451  # the conversation's latest: catch-up is paged
        live = asyncio.ensure_future(_send_after_join(node, ada, topic))
        seqs = []
        while len(seqs) < 442:
            event = await b.next_event(topic, "new_message")
            seqs.append(event.payload["message"]["seq"])
        await live
        assert seqs == list(range(11, 453))


def _count_page_reads(node: RunningNode, patch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The bounds of every page the node's store reads from now on (undone by ``patch``)."""
    store = node.node.store.get().store
    reads: list[dict[str, Any]] = []
    page_messages = store.page_messages

    async def counted(conversation_id: str, **bounds: Any) -> Any:
        reads.append(bounds)
        return await page_messages(conversation_id, **bounds)

    patch.setattr(store, "page_messages", counted)
    return reads


async def test_a_catch_up_join_of_n_pages_asks_the_actor_once_and_reads_n_pages(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    messaging = node.node.messaging.get()
    await asyncio.gather(
        *(messaging.send(ada, cid, Draft(client_id=f"m{n}", content=str(n))) for n in range(450))
    )
    asks: list[str] = []
    ask = messaging._ask

    async def counted_ask(conversation_id: str, handler: Any, /, *args: Any, **kwargs: Any) -> Any:
        asks.append(handler.__name__)
        return await ask(conversation_id, handler, *args, **kwargs)

    monkeypatch.setattr(messaging, "_ask", counted_ask)
    reads = _count_page_reads(node, monkeypatch)
    async with node.client(bob) as b:
        joined = await b.join(topic, {"last_seq": 0})
        assert joined["last_seq"] == 450
        seqs = [
            (await b.next_event(topic, "new_message")).payload["message"]["seq"] for _ in range(450)
        ]
        assert seqs == list(range(1, 451))
        await b.next_event(topic, "presence_state")
    assert asks == ["snapshot"]  # one ask: membership, the conversation and where it is
    assert [r["after_seq"] for r in reads] == [0, 200, 400]  # three pages, each read once


async def test_a_short_catch_up_is_read_once_and_the_reply_says_where_it_ends(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob, topic = await _pair_with_history(node, 5)
    reads = _count_page_reads(node, monkeypatch)
    async with node.client(bob) as b:
        joined = await b.join(topic, {"last_seq": 2})
        assert joined["last_seq"] == 5
        caught_up = [
            (await b.next_event(topic, "new_message")).payload["message"]["seq"] for _ in range(3)
        ]
        assert caught_up == [3, 4, 5]
        up_to_date = await b.join(topic, {"last_seq": 5})
        assert up_to_date["last_seq"] == 5
    # One store read per join: the catch-up page, which also says where the client will be.
    assert [r["after_seq"] for r in reads] == [2, 5]


async def test_a_catch_up_join_while_the_store_is_down_is_refused_then_succeeds(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob, topic = await _pair_with_history(node, 3)
    store = node.node.store.get().store

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        # What the stores raise when their database cannot be reached.
        raise WhisprError(Reason.UNAVAILABLE, "the message store is unavailable")

    async with node.client(bob) as b:
        with monkeypatch.context() as patch:
            patch.setattr(store, "page_messages", down)
            with pytest.raises(ReplyError) as refused:
                await b.join(topic, {"last_seq": 0})
            assert refused.value.reason == "unavailable"
        # Nothing was lost: once the store answers, the same join gets every message.
        joined = await b.join(topic, {"last_seq": 0})
        assert joined["last_seq"] == 3
        seqs = [
            (await b.next_event(topic, "new_message")).payload["message"]["seq"] for _ in range(3)
        ]
        assert seqs == [1, 2, 3]


async def test_sends_refused_while_the_store_is_down_give_back_their_credits(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    commit = node.node.store.get().commit  # the group commit, which writes every send

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise WhisprError(Reason.UNAVAILABLE, "the message store is unavailable")

    sends = node.settings.inbound_credits + 8  # more pipelined sends than credits
    async with node.client(ada) as a:
        await a.join(topic)
        with monkeypatch.context() as patch:
            patch.setattr(commit, "_flush", down)
            refused = await asyncio.gather(
                *(
                    a.push_nowait(topic, "send_message", {"client_id": f"m{n}", "content": str(n)})
                    for n in range(sends)
                ),
                return_exceptions=True,
            )
        assert {r.reason for r in refused if isinstance(r, ReplyError)} == {"unavailable"}
        assert len(refused) == sends
        # Every credit came back: the same connection is still read, and the retried sends
        # are stored once each, in order.
        replies = [
            await a.push(topic, "send_message", {"client_id": f"m{n}", "content": str(n)})
            for n in range(sends)
        ]
        assert [r["seq"] for r in replies] == list(range(1, sends + 1))


async def _send_after_join(node: RunningNode, user: str, topic: str) -> None:
    async with node.client(user) as a:
        await a.join(topic)
        await a.push(topic, "send_message", {"client_id": "live", "content": "live"})


async def test_typing_reaches_the_others_but_not_the_typer(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        await b.join(topic)
        await a.push(topic, "typing_start", {})
        event = await b.next_event(topic, "user_typing")
        assert event.payload == {
            "user_id": ada,
            "device_id": event.payload["device_id"],
            "typing": True,
        }
        await a.push(topic, "send_message", {"client_id": "m", "content": "x"})
        await a.next_event(topic, "new_message")
        assert not [e for e in a.drain_events(topic) if e.event == "user_typing"]


async def test_presence_state_then_diffs_one_meta_per_device(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada, "phone") as a:
        await a.join(topic)
        state = await a.next_event(topic, "presence_state")
        assert state.payload == {}
        own = await a.next_event(topic, "presence_diff")
        assert [m["device"] for m in own.payload["joins"][ada]["metas"]] == ["phone"]
        async with node.client(bob, "web") as b:
            await b.join(topic)
            seen = await b.next_event(topic, "presence_state")
            assert [m["device"] for m in seen.payload[ada]["metas"]] == ["phone"]
            joined = await a.next_event(topic, "presence_diff")
            assert list(joined.payload["joins"]) == [bob]
        left = await a.next_event(topic, "presence_diff")
        assert list(left.payload["leaves"]) == [bob]


async def test_reading_on_one_device_syncs_the_others(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(bob, "phone") as phone, node.client(bob, "laptop") as laptop:
        await laptop.join(f"user:{bob}")
        await phone.join(topic)
        async with node.client(ada) as a:
            await a.join(topic)
            await a.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
        notice = await laptop.next_event(f"user:{bob}", "message_notice")
        assert notice.payload["seq"] == 1
        assert notice.payload["conversation_id"] == cid
        assert "content" not in notice.payload
        assert (await phone.push(topic, "mark_delivered", {"seq": 1}))["seq"] == 1
        assert (await phone.push(topic, "mark_read", {"seq": 1}))["seq"] == 1
        read = await laptop.next_event(f"user:{bob}", "read")
        assert read.payload == {"conversation_id": cid, "user_id": bob, "seq": 1}
        rejoined = await laptop.leave(f"user:{bob}")
        assert rejoined == {}
        assert (await laptop.join(f"user:{bob}"))["unread"].get(cid, 0) == 0


async def test_user_topic_creates_and_lists_conversations(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(f"user:{ada}")
        await b.join(f"user:{bob}")
        created = await a.push(
            f"user:{ada}", "create_conversation", {"kind": "direct", "with_user": bob}
        )
        cid = created["conversation"]["id"]
        added = await b.next_event(f"user:{bob}", "conversation_added")
        assert added.payload["conversation"]["id"] == cid
        listed = await a.push(f"user:{ada}", "list_conversations", {})
        assert [c["conversation"]["id"] for c in listed["conversations"]] == [cid]
        # The new conversation is followed for notices without rejoining.
        await asyncio.sleep(0.2)
        await a.join(f"conversation:{cid}")
        await a.push(f"conversation:{cid}", "send_message", {"client_id": "m", "content": "x"})
        notice = await b.next_event(f"user:{bob}", "message_notice")
        assert notice.payload["conversation_id"] == cid


async def test_a_user_over_the_rate_limit_is_refused_and_nothing_is_written(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada) as a:
        await a.join(topic)
        replies = await asyncio.gather(
            *(
                a.push(topic, "send_message", {"client_id": f"m{n}", "content": "x"})
                for n in range(105)
            ),
            return_exceptions=True,
        )
    refused = [r for r in replies if isinstance(r, ReplyError)]
    assert len(refused) == 5
    assert {r.reason for r in refused} == {"rate_limited"}
    history = await node.node.messaging.get().history(ada, cid, after_seq=0, limit=200)
    assert len(history) == 100


async def test_connections_per_address_are_limited(node: RunningNode) -> None:
    from contextlib import AsyncExitStack

    from websockets.exceptions import InvalidStatus

    async with AsyncExitStack() as stack:
        for n in range(node.settings.max_connections_per_ip):
            await stack.enter_async_context(node.client(unique(f"u{n}")))
        with pytest.raises(InvalidStatus) as caught:
            async with node.client(unique("one-more")):
                pass
        assert caught.value.response.status_code == 429
    user = unique("after")
    for _attempt in range(50):  # the count goes back down as the closed sockets finish
        try:
            async with node.client(user) as client:
                assert "unread" in await client.join(f"user:{user}")
                return
        except InvalidStatus:
            await asyncio.sleep(0.05)
    pytest.fail("the per-address count never went back down")


async def test_a_message_whose_live_event_was_lost_is_filled_in_before_later_ones(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    messaging, broker = node.node.messaging.get(), node.node.broker.get()
    async with node.client(bob) as b:
        await b.join(topic, {"last_seq": 0})
        await messaging.send(ada, cid, Draft(client_id="m1", content="1"))
        assert (await b.next_event(topic, "new_message")).payload["message"]["seq"] == 1
        # As if the sending node died between commit and publish: seq 2's event never comes.
        publish = broker.publish
        monkeypatch.setattr(broker, "publish", lambda topic, data: None)
        await messaging.send(ada, cid, Draft(client_id="m2", content="2"))
        monkeypatch.setattr(broker, "publish", publish)
        await messaging.send(ada, cid, Draft(client_id="m3", content="3"))
        await messaging.send(ada, cid, Draft(client_id="m4", content="4"))
        seqs = [
            (await b.next_event(topic, "new_message")).payload["message"]["seq"] for _ in range(3)
        ]
        assert seqs == [2, 3, 4]
        await asyncio.sleep(0.1)
        assert not [e for e in b.drain_events(topic) if e.event == "new_message"]


async def test_events_from_two_publishers_out_of_order_reach_a_fresh_join_in_order(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    messaging, broker = node.node.messaging.get(), node.node.broker.get()
    for n in range(3):
        await messaging.send(ada, cid, Draft(client_id=f"old{n}", content="old"))
    async with node.client(bob) as b:
        joined = await b.join(topic)  # no last_seq: live from here on
        assert joined["last_seq"] == 3
        # Two nodes publish independently, so seq 5's event may overtake seq 4's.
        held: list[tuple[str, bytes]] = []
        publish = broker.publish
        monkeypatch.setattr(broker, "publish", lambda t, data: held.append((t, data)))
        await messaging.send(ada, cid, Draft(client_id="m4", content="4"))
        await messaging.send(ada, cid, Draft(client_id="m5", content="5"))
        monkeypatch.setattr(broker, "publish", publish)
        for held_topic, data in reversed(held):
            broker.publish(held_topic, data)
        seqs = [
            (await b.next_event(topic, "new_message")).payload["message"]["seq"] for _ in range(2)
        ]
        assert seqs == [4, 5]
        await asyncio.sleep(0.1)
        assert not [e for e in b.drain_events(topic) if e.event == "new_message"]


async def test_a_connected_device_makes_its_user_online(node: RunningNode) -> None:
    presence = node.node.presence.get()
    ada, bob = unique("ada"), unique("bob")

    async def online_becomes(expected: set[str]) -> set[str]:
        seen: set[str] = set()
        for _ in range(200):
            seen = await presence.online([ada, bob])
            if seen == expected:
                break
            await asyncio.sleep(0.01)
        return seen

    async with node.client(ada, "phone"):
        assert await online_becomes({ada}) == {ada}
        async with node.client(ada, "laptop"):
            assert await online_becomes({ada}) == {ada}
        assert await online_becomes({ada}) == {ada}  # the phone is still there
        await asyncio.sleep(0.1)
        assert await presence.online([ada, bob]) == {ada}
    assert await online_becomes(set()) == set()


async def test_an_overtaken_event_closes_its_gap_without_reading_the_store(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    broker = node.node.broker.get()
    async with node.client(bob) as b:
        assert (await b.join(topic))["last_seq"] == 0

        def event(seq: int) -> bytes:
            message = Message(
                conversation_id=cid,
                seq=seq,
                id=f"id{seq}",
                client_id=f"c{seq}",
                sender_id=ada,
                kind="text",
                content=str(seq),
                created_at=1.0,
            )
            return encode_event("new_message", {"message": message})

        # Seq 2 overtakes seq 1 (two nodes' actors published them). Neither is in the store:
        # read from there, seq 1 would be missing, and dropped when its event came.
        broker.publish(topic, event(2))
        await asyncio.sleep(0.02)
        broker.publish(topic, event(1))
        seqs = [
            (await b.next_event(topic, "new_message")).payload["message"]["seq"] for _ in range(2)
        ]
        assert seqs == [1, 2]


async def test_a_clients_sends_are_pipelined_and_answered_in_order(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    commit = node.node.store.get().commit
    gate = asyncio.Event()
    flush = commit._flush

    async def held_flush(items: Any) -> Any:
        await gate.wait()
        return await flush(items)

    commit._flush = held_flush
    try:
        async with node.client(ada) as a:
            await a.join(topic)
            first = a.push_nowait(topic, "send_message", {"client_id": "a", "content": "1"})
            second = a.push_nowait(topic, "send_message", {"client_id": "b", "content": "2"})
            history = a.push_nowait(topic, "history", {"after_seq": 0})
            # The first send waits for its commit, and the second reaches the conversation
            # all the same: the connection did not wait for the first one's answer.
            ref = node.node.registry.whereis(("conversation", cid))
            for _ in range(200):
                actor = None if ref is None else ref._actor_weakref()
                if actor is not None and (ada, "b") in actor._pending:
                    break
                await asyncio.sleep(0.01)
                ref = node.node.registry.whereis(("conversation", cid))
            else:
                raise AssertionError("the second send did not reach the conversation")
            assert not history.done()  # a history page waits for the sends before it
            gate.set()
            assert [(await first)["seq"], (await second)["seq"]] == [1, 2]
            page = await history
            assert [m["content"] for m in page["messages"]] == ["1", "2"]
    finally:
        commit._flush = flush
        gate.set()


@pytest.mark.parametrize("bound", [2**63 - 1, 2**63, 2**64, 10**30])
async def test_seqs_past_a_bigint_are_refused_naming_the_field(
    node: RunningNode, bound: int
) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    fits = bound <= 2**63 - 1
    async with node.client(ada) as b:  # the owner: every event is hers to try
        if fits:  # nothing after it: the client is up to date
            assert (await b.join(topic, {"last_seq": bound}))["last_seq"] == bound
        else:
            with pytest.raises(ReplyError) as refused:
                await b.join(topic, {"last_seq": bound})
            assert refused.value.reason == "invalid"
            assert refused.value.response["field"] == "last_seq"
            await b.join(topic, {})
        # (event, payload, the field named when refused, the answer when the seq fits)
        pushes = [
            ("history", {"after_seq": bound}, "after_seq", "ok"),
            ("history", {"before_seq": bound}, "before_seq", "ok"),
            ("mark_read", {"seq": bound}, "seq", "ok"),
            ("mark_delivered", {"seq": bound}, "seq", "ok"),
            ("edit_message", {"seq": bound, "content": "x"}, "seq", "not_found"),
            ("delete_message", {"seq": bound}, "seq", "not_found"),
            ("react", {"seq": bound, "emoji": "👍"}, "seq", "not_found"),
            ("pin", {"seq": bound}, "seq", "not_found"),
        ]
        for event, payload, field, when_it_fits in pushes:
            if fits and when_it_fits == "ok":
                await b.push(topic, event, payload)
                continue
            with pytest.raises(ReplyError) as refused:
                await b.push(topic, event, payload)
            assert refused.value.reason == ("invalid" if not fits else when_it_fits), event
            if not fits:
                assert refused.value.response["field"] == field, event


async def test_a_committed_message_whose_event_was_lost_reaches_members_at_the_next_check(
    node: RunningNode,
) -> None:
    # Its node died between the commit and the publish, and no later message reveals the gap:
    # the position check (every WHISPR_POSITION_CHECK_S) finds it in the store.
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(bob) as b:
        assert (await b.join(topic, {}))["last_seq"] == 0
        await b.next_event(topic, "presence_state")
        lost = Unsequenced(
            conversation_id=cid,
            id="lost-1",
            client_id="lost-1",
            sender_id=ada,
            kind="text",
            content="committed, never published",
            created_at=1.0,
        )
        [result] = await node.node.store.get().store.insert_messages([lost])
        assert result.status == "inserted"
        with pytest.raises(TimeoutError):  # nothing reveals it on its own
            await b.next_event(topic, "new_message", timeout=0.3)
        await node.node.messaging.get().positions.check()
        event = await b.next_event(topic, "new_message", timeout=5)
        assert event.payload["message"]["seq"] == 1
        assert event.payload["message"]["content"] == "committed, never published"


async def test_a_member_removed_while_the_event_was_lost_stops_following_at_the_next_check(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(bob) as b:
        await b.join(topic, {})
        await b.next_event(topic, "presence_state")
        # Removed in the store by another node whose member_removed event never came.
        await node.node.store.get().store.remove_member(cid, bob)
        await node.node.messaging.get().positions.check()
        await b.next_event(topic, "phx_close", timeout=5)
        await node.node.messaging.get().send(ada, cid, Draft(client_id="after", content="x"))
        with pytest.raises(TimeoutError):  # nothing more reaches the removed member
            await b.next_event(topic, "new_message", timeout=0.5)


async def test_a_lone_surrogate_costs_an_error_reply_naming_the_field_not_the_connection(
    node: RunningNode,
) -> None:
    # JSON.stringify writes a JavaScript string cut inside a surrogate pair as a "\ud800"
    # escape; the frame was refused whole (close 1007) before the payload was looked at.
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    async with node.client(ada) as a:
        await a.join(topic)
        await a.join(f"user:{ada}")
        join_ref = a.join_ref(topic)
        pushes = [
            (topic, "send_message", '{"client_id":"c1","content":"cut \\ud83d"}', "content"),
            (topic, "send_message", '{"client_id":"c\\udc00","content":"hi"}', "client_id"),
            (
                topic,
                "send_message",
                '{"client_id":"c2","content":"hi","metadata":{"\\ud800":1}}',
                "metadata",
            ),
            (topic, "react", '{"seq":1,"emoji":"\\ud83d"}', "emoji"),
            (f"user:{ada}", "create_conversation", '{"kind":"\\ud800"}', "kind"),
            (
                f"user:{ada}",
                "create_conversation",
                '{"kind":"direct","with_user":"b\\udfff"}',
                "with_user",
            ),
        ]
        for n, (where, event, payload, field) in enumerate(pushes):
            ref = a.join_ref(where)
            await a.send_raw(f'["{ref}","raw{n}","{where}","{event}",{payload}]')
            reply = await a.next_event(where, "phx_reply")
            assert reply.payload["status"] == "error", (event, payload)
            assert reply.payload["response"]["reason"] == "invalid", reply.payload
            assert reply.payload["response"]["field"] == field, reply.payload
        assert a.closed is None
        assert a.join_ref(topic) == join_ref
        sent = await a.push(topic, "send_message", {"client_id": "c3", "content": "still here"})
        assert sent["seq"] == 1  # nothing refused was written


async def test_create_conversation_refusals_name_the_payloads_field(node: RunningNode) -> None:
    ada = unique("ada")
    async with node.client(ada) as a:
        await a.join(f"user:{ada}")
        cases = [
            ({"kind": "direct"}, "with_user"),
            ({"kind": "direct", "with_user": ada}, "with_user"),
            ({"kind": "direct", "with_user": "b\x00b"}, "with_user"),
            ({"kind": "group", "members": ["b\x00b"]}, "members"),
            ({"kind": "group", "title": "t\x00"}, "title"),
            ({"kind": "group", "members": "bob"}, "members"),
        ]
        for payload, field in cases:
            with pytest.raises(ReplyError) as refused:
                await a.push(f"user:{ada}", "create_conversation", payload)
            assert refused.value.reason == "invalid", payload
            assert refused.value.response["field"] == field, refused.value.response


async def test_list_thread_and_a_group_name_the_payloads_fields(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    topic = f"conversation:{await _group(node, ada, bob)}"
    async with node.client(ada) as a:
        await a.join(topic)
        await a.join(f"user:{ada}")
        with pytest.raises(ReplyError) as thread:
            await a.push(topic, "list_thread", {"seq": 2**70})
        assert thread.value.response["field"] == "seq"  # the payload's, not root_seq
        with pytest.raises(ReplyError) as group:  # with_user is checked even where unused
            await a.push(
                f"user:{ada}", "create_conversation", {"kind": "group", "with_user": "\x00"}
            )
        assert group.value.response["field"] == "with_user"
