"""``whispr.search.v1.MessageSearch`` over a real socket, on the embedded node and on
PostgreSQL and Redis: search as the WebSocket's, paged by cursor; ``ExportHistory`` streams
one JSON line per message with reactions and edits; refusals as status codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from actors.conversation import Draft
from tests.gateway.conftest import unique
from tests.grpc.conftest import GrpcNode
from tests.grpc.test_messaging_api import _refused
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as messaging_pb
from whispr.grpc.gen.whispr.search.v1 import search_pb2 as pb
from whispr.grpc.gen.whispr.search.v1 import search_pb2_grpc as pb_grpc

AUTH = GrpcNode.auth()


@pytest.fixture
async def search(grpc_node: GrpcNode) -> AsyncIterator[Any]:
    async with grpc_node.channel() as channel:
        yield pb_grpc.MessageSearchStub(channel)


async def test_search_pages_and_filters(grpc_node: GrpcNode, search: Any) -> None:
    messaging = grpc_node.running.node.messaging.get()
    ada, bob, eve = unique("ada"), unique("bob"), unique("eve")
    cid = (await messaging.create_group(ada, "t", [bob])).id
    others = (await messaging.create_group(eve, "t", [])).id
    for n in range(3):
        await messaging.send(ada, cid, Draft(client_id=f"a{n}", content=f"walrus tusk {n}"))
    await messaging.send(bob, cid, Draft(client_id="b", content="bob's walrus"))
    await messaging.send(eve, others, Draft(client_id="e", content="eve's walrus"))

    seen = []
    cursor = ""
    while True:
        page = await search.Search(
            pb.SearchRequest(user_id=ada, query="walrus", limit=2, cursor=cursor), metadata=AUTH
        )
        for hit in page.hits:
            highlight = hit.highlights[0]
            assert hit.snippet[highlight.start : highlight.end] == "walrus"
            seen.append(hit.message.seq)
        cursor = page.cursor
        if not cursor:
            break
    assert sorted(seen) == [1, 2, 3, 4]

    page = await search.Search(
        pb.SearchRequest(user_id=ada, query="walrus", sender_id=bob, kind=pb.KIND_TEXT),
        metadata=AUTH,
    )
    assert [h.message.content for h in page.hits] == ["bob's walrus"]
    page = await search.Search(
        pb.SearchRequest(user_id=ada, query="walrus", has_attachment=True), metadata=AUTH
    )
    assert list(page.hits) == []
    page = await search.Search(
        pb.SearchRequest(user_id=ada, query="walrus", until=0.0), metadata=AUTH
    )
    assert list(page.hits) == []

    await _refused(
        search.Search(pb.SearchRequest(user_id=ada, query="walrus", cursor="x"), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid",
    )
    await _refused(
        search.Search(
            pb.SearchRequest(user_id=ada, query="walrus", conversation_id=others), metadata=AUTH
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "not_member",
    )
    await _refused(
        search.Search(pb.SearchRequest(user_id=ada, query=""), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid",
    )
    await _refused(
        search.Search(pb.SearchRequest(query="walrus"), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid",
    )
    await _refused(
        search.Search(pb.SearchRequest(user_id=ada, query="walrus")),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_export_streams_json_lines_as_the_user_sees_history(
    grpc_node: GrpcNode, search: Any
) -> None:
    messaging = grpc_node.running.node.messaging.get()
    ada, bob = unique("ada"), unique("bob")
    first = (await messaging.create_group(ada, "t", [bob])).id
    second = (await messaging.create_group(ada, "u", [])).id
    sent = [
        await messaging.send(ada, first, Draft(client_id=f"m{n}", content=f"line {n}"))
        for n in range(250)  # more than a page of the store
    ]
    await messaging.react(bob, first, sent[0].seq, "👍")
    await messaging.edit(ada, first, sent[1].seq, "edited")
    await messaging.hide(ada, first, sent[2].seq)
    await messaging.send(ada, second, Draft(client_id="s", content="other"))

    lines = [
        line
        async for line in search.ExportHistory(pb.ExportHistoryRequest(user_id=ada), metadata=AUTH)
    ]
    exported = [json.loads(line.json) for line in lines]
    assert [line.exported for line in lines] == list(range(1, len(lines) + 1))
    assert all(line.total >= len(lines) for line in lines)
    by_conversation = [(m["conversation_id"], m["seq"]) for m in exported]
    assert by_conversation == sorted(by_conversation)
    ours = {m["seq"]: m for m in exported if m["conversation_id"] == first}
    assert ours[sent[0].seq]["reactions"] == {"👍": [bob]}
    assert ours[sent[1].seq]["content"] == "edited"
    assert ours[sent[1].seq]["edited_at"] is not None
    assert sent[2].seq not in ours  # hidden by ada
    assert any(m["conversation_id"] == second for m in exported)

    # The calling service exports one conversation whole (bob's hidden nothing).
    lines = [
        line
        async for line in search.ExportHistory(
            pb.ExportHistoryRequest(conversation_id=first), metadata=AUTH
        )
    ]
    assert sent[2].seq in {json.loads(line.json)["seq"] for line in lines}

    for request, code in (
        (pb.ExportHistoryRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.ExportHistoryRequest(user_id=unique("eve"), conversation_id=first), None),
        (pb.ExportHistoryRequest(conversation_id="nope"), grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in search.ExportHistory(request, metadata=AUTH):
                pass
        assert caught.value.code() == (code or grpc.StatusCode.PERMISSION_DENIED)


async def test_list_messages_takes_the_history_filters(grpc_node: GrpcNode, stub: Any) -> None:
    messaging = grpc_node.running.node.messaging.get()
    ada, bob = unique("ada"), unique("bob")
    cid = (await messaging.create_group(ada, "t", [bob])).id
    await messaging.send(ada, cid, Draft(client_id="a", content="one"))
    await messaging.send(bob, cid, Draft(client_id="b", content="two"))
    await messaging.send(ada, cid, Draft(client_id="c", content="three"))

    async def contents(**given: Any) -> list[str]:
        page = await stub.ListMessages(
            messaging_pb.ListMessagesRequest(conversation_id=cid, **given), metadata=AUTH
        )
        return [m.content for m in page.messages]

    assert await contents(sender_id=bob) == ["two"]
    assert await contents(sender_id=ada, kind="text", limit=1) == ["three"]
    assert await contents(kind="media") == []
    assert await contents(since=4e9) == []
    assert await contents(until=0.0) == []
    for bad, field in (({"kind": "audio"}, "kind"), ({"since": float("nan")}, "since")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await contents(**bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(caught.value.trailing_metadata() or ())["whispr-field"] == field
