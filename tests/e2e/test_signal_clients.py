"""Real Signal-protocol clients through Whispr: two users, two devices each, two nodes.

Each device runs X3DH and the Double Ratchet (the ``x3dh`` and ``doubleratchet`` packages):
it registers, uploads its keys, starts sessions from the bundles the server hands out, and
sends one envelope per device of the group. One device is offline for the first messages and
catches up; every device decrypts exactly what was meant for it. Blind-index search then
finds exactly the messages a plaintext search of the same words finds.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from supervisors import stop_tree
from tests import services
from tests.e2e.signal_client import Device, b64, blind_tokens, normalized_words
from tests.gateway.conftest import EACH_STORE, RunningNode, start_node, unique
from whispr.client import ReplyError

pytestmark = pytest.mark.timeout(120)


@asynccontextmanager
async def two_nodes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    """Two nodes on one PostgreSQL schema and Redis; embedded, one node serving as both."""
    if request.param == "embedded":
        node = await start_node({"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
        try:
            yield node, node
        finally:
            await stop_tree(node.root, deadline=10)
        return
    redis_url = request.getfixturevalue("redis_url")
    async with services.private_schema(request.getfixturevalue("postgres_url")) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("e2e"),
        }
        first = await start_node({**env, "WHISPR_NODE_NAME": unique("n1")})
        try:
            second = await start_node({**env, "WHISPR_NODE_NAME": unique("n2")})
            try:
                yield first, second
            finally:
                await stop_tree(second.root, deadline=10)
        finally:
            await stop_tree(first.root, deadline=10)


@pytest.fixture(params=EACH_STORE)
async def nodes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    async with two_nodes(request, tmp_path) as pair:
        yield pair


async def _online(stack: AsyncExitStack, node: RunningNode, device: Device) -> Device:
    device.client = await stack.enter_async_context(node.client(device.user_id, device.device_id))
    await device.client.join(device.topic)
    return device


async def _next_message(device: Device, conversation_id: str) -> dict[str, Any]:
    assert device.client is not None
    while True:
        event = await device.client.next_event(f"conversation:{conversation_id}", timeout=10)
        if event.event == "new_message":
            message: dict[str, Any] = event.payload["message"]
            return message


async def _decrypt(device: Device, message: dict[str, Any]) -> str | None:
    envelope = message.get("envelope")
    if envelope is None:
        return None
    data = base64.b64decode(envelope["ciphertext"])
    plain = await device.decrypt_from(
        (message["sender_id"], _sender_device[message["client_id"]]), envelope["type"], data
    )
    return plain.decode()


#: client id -> the sending device (the server does not say which device sent: the
#: ciphertext's session does; the test keeps it beside).
_sender_device: dict[str, str] = {}


async def test_two_users_two_devices_each_through_two_nodes(
    nodes: tuple[RunningNode, RunningNode], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = nodes
    alice, bob = unique("alice"), unique("bob")
    a1, a2 = Device(alice, "a1"), Device(alice, "a2")
    b1, b2 = Device(bob, "b1"), Device(bob, "b2")
    search_key = secrets.token_bytes(32)  # shared by the members, never sent to the server
    async with AsyncExitStack() as stack:
        for device, node in ((a1, first), (a2, second), (b1, first), (b2, second)):
            await _online(stack, node, device)
            registered = await device.register()
            assert registered["device"]["device_id"] == device.device_id
            assert (await device.upload())["one_time_prekeys"] == 20
        assert a1.client is not None
        created = await a1.client.push(
            a1.topic, "create_conversation", {"kind": "group", "title": "e2e", "members": [bob]}
        )
        conversation_id = created["conversation"]["id"]
        # b2 goes offline before anything is sent.
        assert b2.client is not None
        await b2.client.aclose()
        b2.client = None
        online = [a1, a2, b1]
        for device in online:
            assert device.client is not None
            await device.client.join(f"conversation:{conversation_id}")

        sent: list[tuple[int, Device, str]] = []
        script = [
            (a1, "Hello Bob, the plan is ready"),
            (b1, "hi Alice! Plan received"),
            (a2, "from Alice's laptop: the PLAN changed"),
            (a1, "meet at noon"),
            (b1, "noon works"),
        ]
        for index, (sender, text) in enumerate(script):
            client_id = f"m{index}"
            _sender_device[client_id] = sender.device_id
            reply = await sender.send(conversation_id, client_id, text, search_key=search_key)
            sent.append((reply["seq"], sender, text))
            for device in online:
                message = await _next_message(device, conversation_id)
                assert message["seq"] == reply["seq"]
                assert message["content"] == ""
                plain = await _decrypt(device, message)
                if device is sender:
                    assert plain is None  # no envelope for the sending device itself
                else:
                    assert plain == text

        # The one-time prekeys handed out were each handed out once.
        # b2 comes back on the other node and catches up from the start.
        b2.client = await stack.enter_async_context(second.client(bob, "b2"))
        await b2.client.join(b2.topic)
        await b2.client.join(f"conversation:{conversation_id}", {"last_seq": 0})
        for seq, _sender, text in sent:
            message = await _next_message(b2, conversation_id)
            assert message["seq"] == seq
            assert await _decrypt(b2, message) == text

        # Acknowledged: b2's envelopes are gone from the store; a catch-up now has none.
        await b2.client.push(
            f"conversation:{conversation_id}", "mark_delivered", {"seq": sent[-1][0]}
        )
        await b2.client.leave(f"conversation:{conversation_id}")
        await b2.client.join(f"conversation:{conversation_id}", {"last_seq": 0})
        for seq, _sender, _text in sent:
            message = await _next_message(b2, conversation_id)
            assert message["seq"] == seq
            assert message["envelope"] is None

        # b2 replies; everyone (a1, a2, b1) decrypts it.
        online.append(b2)
        _sender_device["m-b2"] = "b2"
        reply = await b2.send(
            conversation_id, "m-b2", "caught up on the plan", search_key=search_key
        )
        sent.append((reply["seq"], b2, "caught up on the plan"))
        for device in online:
            message = await _next_message(device, conversation_id)
            plain = await _decrypt(device, message)
            assert plain == (None if device is b2 else "caught up on the plan")

        # Blind-index search finds exactly what a plaintext search of the words finds.
        for query in ("plan", "PLAN", "noon", "alice", "hello bob", "absent"):
            words = normalized_words(query)
            expected = sorted(
                (seq for seq, _s, text in sent if set(words) <= set(normalized_words(text))),
                reverse=True,
            )
            assert b1.client is not None
            found = await b1.client.push(
                f"conversation:{conversation_id}",
                "search",
                {"blind_tokens": [b64(t) for t in blind_tokens(search_key, query)]},
            )
            assert found["seqs"] == expected, query
            assert b64(blind_tokens(search_key, query)[0]) not in capsys.readouterr().out
        assert expected == []  # the last query matched nothing

        # Edits, deletes: a plain edit would put the text in the clear, so it is refused; a
        # message deleted for everyone leaves the search with its tokens.
        topic = f"conversation:{conversation_id}"
        first_seq, _s, first_text = sent[0]
        assert "hello" in normalized_words(first_text)
        with pytest.raises(ReplyError) as refused:
            await a1.client.push(topic, "edit_message", {"seq": first_seq, "content": "clear"})
        assert refused.value.reason == "invalid"
        await a1.client.push(topic, "delete_message", {"seq": first_seq})
        found = await b1.client.push(
            topic, "search", {"blind_tokens": [b64(t) for t in blind_tokens(search_key, "hello")]}
        )
        assert found["seqs"] == []


async def test_mismatched_and_stale_devices_are_refused_and_nothing_is_stored(
    nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = nodes
    alice, bob = unique("alice"), unique("bob")
    a1, b1, b2 = Device(alice, "a1"), Device(bob, "b1"), Device(bob, "b2")
    async with AsyncExitStack() as stack:
        for device, node in ((a1, first), (b1, second), (b2, second)):
            await _online(stack, node, device)
            await device.register()
            await device.upload()
        assert a1.client is not None
        created = await a1.client.push(
            a1.topic, "create_conversation", {"kind": "group", "title": "t", "members": [bob]}
        )
        conversation_id = created["conversation"]["id"]
        topic = f"conversation:{conversation_id}"
        await a1.client.join(topic)
        bundles = await a1.fetch_sessions(bob, ["b1"])
        envelope = {
            "user_id": bob,
            "device_id": "b1",
            "registration_id": bundles[0]["registration_id"],
            "type": "prekey",
            "ciphertext": b64(b"x" * 40),
        }
        ghost = {**envelope, "device_id": "ghost"}
        with pytest.raises(ReplyError) as refused:
            await a1.client.push(
                topic,
                "send_message",
                {"client_id": "c1", "metadata": {"e2e": True}, "envelopes": [envelope, ghost]},
            )
        assert refused.value.reason == "mismatched_devices"
        assert refused.value.response["missing"] == {bob: ["b2"]}
        assert refused.value.response["extra"] == {bob: ["ghost"]}
        # b1 registers again (reinstalled): its registration id changed, the sender's is stale.
        assert b1.client is not None
        b1.registration_id += 1
        await b1.register()
        b2_bundle = (await a1.fetch_sessions(bob, ["b2"]))[0]
        stale = [
            envelope,
            {**envelope, "device_id": "b2", "registration_id": b2_bundle["registration_id"]},
        ]
        with pytest.raises(ReplyError) as refused:
            await a1.client.push(
                topic,
                "send_message",
                {"client_id": "c1", "metadata": {"e2e": True}, "envelopes": stale},
            )
        assert refused.value.reason == "stale_devices"
        assert refused.value.response["stale"] == {bob: ["b1"]}
        history = await a1.client.push(topic, "history", {})
        assert history["messages"] == []
        # A forged signed prekey is refused, and nothing of it is stored.
        forged = a1.upload_payload()
        forged["signed_prekey"] = {
            **forged["signed_prekey"],
            "key_id": 2,
            "signature": b64(b"\x00" * 64),
        }
        with pytest.raises(ReplyError) as refused:
            await a1.client.push(a1.topic, "upload_keys", forged)
        assert refused.value.reason == "invalid"
        assert refused.value.response["field"] == "signed_prekey"
        devices = await a1.client.push(a1.topic, "list_devices", {})
        assert devices["devices"][0]["signed_prekey_id"] == 1


async def test_one_time_prekeys_are_handed_out_once_under_concurrency(
    nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = nodes
    owner = Device(unique("owner"), "d1")
    fetchers = [unique("fetcher") for _ in range(6)]
    async with AsyncExitStack() as stack:
        await _online(stack, first, owner)
        await owner.register()
        await owner.upload(one_time=20)
        clients = []
        for index, user in enumerate(fetchers):
            node = first if index % 2 else second
            client = await stack.enter_async_context(node.client(user, "x"))
            await client.join(f"user:{user}")
            clients.append((user, client))

        async def fetch(user: str, client: Any) -> list[Any]:
            found = []
            for _ in range(5):
                reply = await client.push(f"user:{user}", "get_bundles", {"user_id": owner.user_id})
                found.append(reply["bundles"][0]["one_time_prekey"])
            return found

        results = await asyncio.gather(*(fetch(u, c) for u, c in clients))
        handed = [k["key_id"] for batch in results for k in batch if k is not None]
        assert len(handed) == 20
        assert len(set(handed)) == 20
        assert sum(k is None for batch in results for k in batch) == 10
        # The owner was told it runs low.
        assert owner.client is not None
        event = await owner.client.next_event(owner.topic, timeout=5)
        while event.event != "prekeys_low":
            event = await owner.client.next_event(owner.topic, timeout=5)
        assert event.payload["device_id"] == "d1"


async def test_a_removed_device_receives_nothing_more(
    nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = nodes
    alice, bob = unique("alice"), unique("bob")
    a1, b1, b2 = Device(alice, "a1"), Device(bob, "b1"), Device(bob, "b2")
    async with AsyncExitStack() as stack:
        for device, node in ((a1, first), (b1, first), (b2, second)):
            await _online(stack, node, device)
            await device.register()
            await device.upload()
        assert a1.client is not None
        assert b1.client is not None
        assert b2.client is not None
        created = await a1.client.push(
            a1.topic, "create_conversation", {"kind": "group", "title": "t", "members": [bob]}
        )
        conversation_id = created["conversation"]["id"]
        await a1.client.join(f"conversation:{conversation_id}")
        await b1.client.push(b1.topic, "remove_device", {"device_id": "b2"})
        code, _reason = await b2.client.wait_closed()
        assert code is not None
        devices = await b1.client.push(b1.topic, "list_devices", {})
        assert [d["device_id"] for d in devices["devices"]] == ["b1"]
        # alice hears of it, and her send needs no envelope for b2 (one is refused as extra).
        event = await a1.client.next_event(a1.topic, timeout=5)
        while event.event != "devices_changed" or event.payload["change"] != "removed":
            event = await a1.client.next_event(a1.topic, timeout=5)
        assert event.payload == {"user_id": bob, "device_id": "b2", "change": "removed"}
        _sender_device["r1"] = "a1"
        await a1.send(conversation_id, "r1", "after the removal")
        assert sorted(a1.sessions) == [(bob, "b1")]
        # b2 comes back with its old token: unregistered, it gets the message without any
        # envelope.
        async with second.client(bob, "b2") as again:
            await again.join(f"conversation:{conversation_id}", {"last_seq": 0})
            event = await again.next_event(f"conversation:{conversation_id}", timeout=10)
            while event.event != "new_message":
                event = await again.next_event(f"conversation:{conversation_id}", timeout=10)
            assert event.payload["message"]["envelope"] is None


async def test_contacts_hear_of_new_devices_and_identity_changes(
    nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = nodes
    alice, bob = unique("alice"), unique("bob")
    a1, b1 = Device(alice, "a1"), Device(bob, "b1")
    async with AsyncExitStack() as stack:
        await _online(stack, first, a1)
        await _online(stack, second, b1)
        assert a1.client is not None
        assert b1.client is not None
        await a1.client.push(a1.topic, "create_conversation", {"kind": "direct", "with_user": bob})
        await b1.register()
        await b1.upload()

        async def next_named(name: str) -> dict[str, Any]:
            assert a1.client is not None
            while True:
                event = await a1.client.next_event(a1.topic, timeout=10)
                if event.event == name:
                    payload: dict[str, Any] = event.payload
                    return payload

        assert await next_named("devices_changed") == {
            "user_id": bob,
            "device_id": "b1",
            "change": "added",
        }
        # b1 is reinstalled with a new identity: alice's client shows the safety-number change.
        b1.state = Device(bob, "b1").state
        await b1.upload()
        changed = await next_named("identity_changed")
        assert changed["user_id"] == bob
        assert changed["device_id"] == "b1"
        assert base64.b64decode(changed["identity_key"]) == b1.state.bundle.identity_key
        # Bundles now carry the new identity and its new signed prekey.
        [bundle] = (await a1.client.push(a1.topic, "get_bundles", {"user_id": bob}))["bundles"]
        assert base64.b64decode(bundle["identity_key"]) == b1.state.bundle.identity_key


async def test_a_device_added_later_gets_no_envelope_of_earlier_messages(
    nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = nodes
    alice, bob = unique("alice"), unique("bob")
    a1, b1, b3 = Device(alice, "a1"), Device(bob, "b1"), Device(bob, "b3")
    async with AsyncExitStack() as stack:
        for device, node in ((a1, first), (b1, second)):
            await _online(stack, node, device)
            await device.register()
            await device.upload()
        assert a1.client is not None
        created = await a1.client.push(
            a1.topic, "create_conversation", {"kind": "group", "title": "t", "members": [bob]}
        )
        conversation_id = created["conversation"]["id"]
        await a1.client.join(f"conversation:{conversation_id}")
        _sender_device["early"] = "a1"
        early = await a1.send(conversation_id, "early", "before b3 existed")
        await _online(stack, second, b3)
        await b3.register()
        await b3.upload()
        _sender_device["late"] = "a1"
        late = await a1.send(conversation_id, "late", "after b3 came")  # fetches b3's bundle
        assert b3.client is not None
        await b3.client.join(f"conversation:{conversation_id}", {"last_seq": 0})
        message = await _next_message(b3, conversation_id)
        assert (message["seq"], message["envelope"]) == (early["seq"], None)
        message = await _next_message(b3, conversation_id)
        assert message["seq"] == late["seq"]
        assert await _decrypt(b3, message) == "after b3 came"


async def test_an_edit_carries_envelopes_and_reaches_every_device_live_and_on_catch_up(
    nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = nodes
    alice, bob = unique("alice"), unique("bob")
    a1, b1, b2 = Device(alice, "a1"), Device(bob, "b1"), Device(bob, "b2")
    async with AsyncExitStack() as stack:
        for device, node in ((a1, first), (b1, second), (b2, second)):
            await _online(stack, node, device)
            await device.register()
            await device.upload()
        assert a1.client is not None
        assert b1.client is not None
        assert b2.client is not None
        await b2.client.aclose()  # offline until it catches up
        created = await a1.client.push(
            a1.topic, "create_conversation", {"kind": "group", "title": "t", "members": [bob]}
        )
        conversation_id = created["conversation"]["id"]
        topic = f"conversation:{conversation_id}"
        await a1.client.join(topic)
        await b1.client.join(topic)
        _sender_device["typo"] = _sender_device["fix"] = "a1"
        original = await a1.send(conversation_id, "typo", "see you at nono")
        edit = await a1.send(conversation_id, "fix", "see you at noon", edit_of=original["seq"])
        assert edit["seq"] == original["seq"]
        assert edit["edit_seq"] > original["seq"]
        # Live: b1 gets the edit as an end-to-end message naming the seq it edits.
        message = await _next_message(b1, conversation_id)
        assert await _decrypt(b1, message) == "see you at nono"
        message = await _next_message(b1, conversation_id)
        assert message["seq"] == edit["edit_seq"]
        assert message["metadata"]["edit_of"] == original["seq"]
        assert await _decrypt(b1, message) == "see you at noon"
        # On catch-up: b2, offline for both, gets the message and its edit, each decrypted.
        b2.client = await stack.enter_async_context(second.client(bob, "b2"))
        await b2.client.join(f"conversation:{conversation_id}", {"last_seq": 0})
        message = await _next_message(b2, conversation_id)
        assert await _decrypt(b2, message) == "see you at nono"
        message = await _next_message(b2, conversation_id)
        assert message["metadata"]["edit_of"] == original["seq"]
        assert await _decrypt(b2, message) == "see you at noon"
        # Only the sender edits; edit_of is the server's to set; the device check holds.
        with pytest.raises(ReplyError) as refused:
            await b1.client.push(
                topic,
                "edit_message",
                {"seq": original["seq"], "client_id": "b-fix", "envelopes": []},
            )
        assert refused.value.reason == "forbidden"
        with pytest.raises(ReplyError) as refused:
            await a1.client.push(
                topic,
                "send_message",
                {"client_id": "x", "metadata": {"e2e": True, "edit_of": 1}, "envelopes": []},
            )
        assert (refused.value.reason, refused.value.response["field"]) == ("invalid", "metadata")
        with pytest.raises(ReplyError) as refused:
            await a1.client.push(
                topic,
                "edit_message",
                {"seq": original["seq"], "client_id": "fix-2", "envelopes": []},
            )
        assert refused.value.reason == "mismatched_devices"
        assert refused.value.response["missing"] == {bob: ["b1", "b2"]}
        history = await a1.client.push(topic, "history", {})
        assert [m["client_id"] for m in history["messages"]] == ["typo", "fix"]
