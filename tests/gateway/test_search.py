"""Search and filtered history over real sockets, on both stores: ``search`` on a
conversation's channel and on the user's own, paged by cursor, refused for a made-up cursor
or a conversation the user is not in; ``history`` with the filters; the search language a
conversation setting."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.gateway.conftest import RunningNode, unique
from whispr.client import ReplyError


async def _group(node: RunningNode, owner: str, *members: str) -> str:
    conversation = await node.node.messaging.get().create_group(owner, "t", list(members))
    return conversation.id


async def _send(client: Any, topic: str, content: str) -> int:
    reply = await client.push(topic, "send_message", {"client_id": unique("c"), "content": content})
    seq: int = reply["seq"]
    return seq


async def test_search_on_a_conversation_and_on_the_users_channel(node: RunningNode) -> None:
    ada, bob, eve = unique("ada"), unique("bob"), unique("eve")
    shared = await _group(node, ada, bob)
    private = await _group(node, ada)
    other = await _group(node, eve)
    async with (
        node.client(ada, "laptop") as laptop,
        node.client(bob, "phone") as phone,
        node.client(eve, "phone") as eves,
    ):
        for topic in (f"conversation:{shared}", f"conversation:{private}", f"user:{ada}"):
            await laptop.join(topic)
        await phone.join(f"conversation:{shared}")
        await phone.join(f"user:{bob}")
        await eves.join(f"conversation:{other}")
        for n in range(5):
            await _send(laptop, f"conversation:{shared}", f"quokka number {n}")
        await _send(phone, f"conversation:{shared}", "a quokka from bob")
        await _send(laptop, f"conversation:{private}", "my own quokka")
        await _send(eves, f"conversation:{other}", "eve's quokka")

        # All of ada's conversations, page by page: each hit once, none of eve's.
        seen: list[tuple[str, int]] = []
        cursor = None
        while True:
            ask: dict[str, Any] = {"query": "QUOKKA", "limit": 3}
            if cursor is not None:
                ask["cursor"] = cursor
            page = await laptop.push(f"user:{ada}", "search", ask)
            for hit in page["hits"]:
                assert set(hit) == {"message", "rank", "snippet", "highlights"}
                start, end = hit["highlights"][0]
                assert hit["snippet"][start:end].lower() == "quokka"
                seen.append((hit["message"]["conversation_id"], hit["message"]["seq"]))
            cursor = page["cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 7
        assert {c for c, _ in seen} == {shared, private}

        # Filters, and the conversation's own channel.
        page = await laptop.push(f"user:{ada}", "search", {"query": "quokka", "sender_id": bob})
        assert [h["message"]["content"] for h in page["hits"]] == ["a quokka from bob"]
        page = await phone.push(f"conversation:{shared}", "search", {"query": "quokka own"})
        assert page == {"hits": [], "cursor": None}
        page = await phone.push(f"user:{bob}", "search", {"query": "own quokka"})
        assert page["hits"] == []
        page = await laptop.push(
            f"user:{ada}", "search", {"query": "own", "conversation_id": private}
        )
        assert [h["message"]["content"] for h in page["hits"]] == ["my own quokka"]

        # A cursor is only good for its own query; a made-up one is refused.
        first = await laptop.push(f"user:{ada}", "search", {"query": "quokka", "limit": 1})
        for bad_cursor, query in (
            ("garbage", "quokka"),
            (first["cursor"][:-2] + "AA", "quokka"),
            (first["cursor"], "number"),
        ):
            with pytest.raises(ReplyError) as refused:
                await laptop.push(
                    f"user:{ada}", "search", {"query": query, "limit": 1, "cursor": bad_cursor}
                )
            assert (refused.value.reason, refused.value.response["field"]) == (
                "invalid",
                "cursor",
            )
        with pytest.raises(ReplyError) as refused:
            await phone.push(f"user:{bob}", "search", {"query": "x", "conversation_id": other})
        assert refused.value.reason == "not_member"
        for bad, field in (({"query": ""}, "query"), ({"query": "a", "kind": "audio"}, "kind")):
            with pytest.raises(ReplyError) as refused:
                await laptop.push(f"user:{ada}", "search", bad)
            assert (refused.value.reason, refused.value.response.get("field")) == (
                "invalid",
                field,
            )


async def test_history_filters_and_the_search_language_setting(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _group(node, ada, bob)
    topic = f"conversation:{cid}"
    async with node.client(ada, "laptop") as laptop, node.client(bob, "phone") as phone:
        await laptop.join(topic)
        await phone.join(topic)
        start = time.time()
        await _send(laptop, topic, "one")
        await _send(phone, topic, "two")
        await _send(laptop, topic, "three")
        page = await laptop.push(topic, "history", {"sender_id": bob})
        assert [m["content"] for m in page["messages"]] == ["two"]
        page = await laptop.push(topic, "history", {"kind": "text", "sender_id": ada, "limit": 1})
        assert [m["content"] for m in page["messages"]] == ["three"]
        page = await laptop.push(topic, "history", {"since": start + 3600})
        assert page["messages"] == []
        page = await laptop.push(topic, "history", {"until": start - 3600})
        assert page["messages"] == []
        with pytest.raises(ReplyError) as refused:
            await laptop.push(topic, "history", {"kind": "audio"})
        assert refused.value.response["field"] == "kind"

        reply = await laptop.push(
            topic, "update_conversation", {"settings": {"search_language": "english"}}
        )
        assert reply["conversation"]["settings"]["search_language"] == "english"
        with pytest.raises(ReplyError) as refused:
            await laptop.push(
                topic, "update_conversation", {"settings": {"search_language": "klingon"}}
            )
        assert refused.value.response["field"] == "settings"


async def test_one_search_event_takes_words_or_blind_tokens_never_both(node: RunningNode) -> None:
    ada = unique("ada")
    shared = await _group(node, ada)
    token = "AAAAAAAAAAAAAAAAAAAAAA=="
    async with node.client(ada, "laptop") as laptop:
        topic = f"conversation:{shared}"
        await laptop.join(topic)
        await laptop.join(f"user:{ada}")
        await _send(laptop, topic, "plain words")
        asks: list[tuple[str, dict[str, Any], str]] = [
            (topic, {"query": "plain", "blind_tokens": [token]}, "query"),
            (topic, {}, "query"),
            (f"user:{ada}", {"blind_tokens": [token]}, "conversation_id"),
        ]
        for where, ask, field in asks:
            with pytest.raises(ReplyError) as refused:
                await laptop.push(where, "search", ask)
            assert (refused.value.response["reason"], refused.value.response["field"]) == (
                "invalid",
                field,
            )
        # Tokens no message carries: nothing, on either channel.
        assert await laptop.push(topic, "search", {"blind_tokens": [token]}) == {"seqs": []}
        found = await laptop.push(
            f"user:{ada}", "search", {"blind_tokens": [token], "conversation_id": shared}
        )
        assert found == {"seqs": []}
        # Words still find the plain message.
        page = await laptop.push(topic, "search", {"query": "plain"})
        assert [h["message"]["content"] for h in page["hits"]] == ["plain words"]
