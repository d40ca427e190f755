"""Search, history filters and export over HTTP on both stores: the socket's rules and
refusals, pages, and an export streamed line by line.

Every response read through ``Api`` clients is checked against the node's OpenAPI document.
"""

from __future__ import annotations

import base64

import httpx
import msgspec
import pytest

from actors.model import Draft, Message
from tests.http.conftest import Api, problem
from whispr.http.routes.export import JSON_LINES, TOTAL_HEADER

pytestmark = pytest.mark.timeout(180)


async def _group(api: Api, owner: str, *members: str) -> str:
    async with api.user(owner) as client:
        response = await client.post(
            "/conversations", json={"kind": "group", "title": "g", "members": list(members)}
        )
        assert response.status_code == 201, response.text
        conversation_id: str = response.json()["id"]
        return conversation_id


async def _send(client: httpx.AsyncClient, conversation_id: str, key: str, content: str) -> None:
    sent = await client.post(
        f"/conversations/{conversation_id}/messages",
        json={"content": content},
        headers={"Idempotency-Key": key},
    )
    assert sent.status_code == 201, sent.text


async def test_search_pages_filters_and_membership(api: Api) -> None:
    group = await _group(api, "sa", "sb")
    async with api.user("sa") as sa, api.user("sb") as sb, api.user("sc") as sc:
        for n in range(3):
            await _send(sa, group, f"a{n}", f"falcon flies {n}")
        await _send(sb, group, "b0", "falcon lands")

        seen: list[int] = []
        cursor = None
        for _ in range(5):
            params: dict[str, str | int] = {"query": "falcon", "limit": 3}
            if cursor is not None:
                params["cursor"] = cursor
            page = await sa.get(f"/conversations/{group}/search", params=params)
            assert page.status_code == 200, page.text
            seen += [hit["message"]["seq"] for hit in page.json()["hits"]]
            cursor = page.json().get("next")
            if cursor is None:
                break
        assert sorted(seen) == sorted(set(seen))  # every hit once, over two pages
        assert len(seen) == 4

        everywhere = await sb.get("/search", params={"query": "falcon", "sender_id": "sb"})
        assert [h["message"]["client_id"] for h in everywhere.json()["hits"]] == ["b0"]
        scoped = await sb.get("/search", params={"query": "lands", "conversation_id": group})
        assert len(scoped.json()["hits"]) == 1
        none = await sa.get("/search", params={"query": "falcon", "until": 1})
        assert none.json()["hits"] == []

        # A non-member finds nothing of it, and is refused it by name, as over the socket.
        assert (await sc.get("/search", params={"query": "falcon"})).json()["hits"] == []
        problem(
            await sc.get(f"/conversations/{group}/search", params={"query": "x"}), 403, "not_member"
        )
        problem(
            await sc.get("/search", params={"query": "x", "conversation_id": group}),
            403,
            "not_member",
        )
        problem(await sa.get("/conversations/nope/search", params={"query": "x"}), 404, "not_found")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 257}, "query"),
        ({"query": "a\x00b"}, "query"),
        ({"query": "x", "limit": -(2**64)}, "limit"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "since": "inf"}, "since"),
        ({"query": "x", "until": "1e999"}, "until"),
        ({"query": "x", "kind": "nope"}, "kind"),
        ({"query": "x", "cursor": "not-a-cursor"}, "cursor"),
        ({"blind_tokens": base64.b64encode(b"t" * 16).decode()}, "conversation_id"),
        ({"query": "x", "blind_tokens": base64.b64encode(b"t" * 16).decode()}, "query"),
        ({"blind_tokens": "!!not base64!!", "conversation_id": "c"}, "blind_tokens"),
    ],
)
async def test_bad_search_input_is_refused_naming_the_field(
    api: Api, params: dict[str, object], field: str
) -> None:
    async with api.user("sx") as client:
        response = await client.get("/search", params=params)  # type: ignore[arg-type]
        body = problem(response, 400, "invalid")
        assert body["field"] == field, body


async def test_a_huge_limit_is_capped_as_on_the_socket(api: Api) -> None:
    async with api.user("sx") as client:
        response = await client.get("/search", params={"query": "x", "limit": 2**64})
        assert response.status_code == 200, response.text


async def test_undecodable_words_are_answered_never_a_crash(api: Api) -> None:
    async with api.user("sx") as client:
        for raw in ("%ED%A0%80", "%FF", "%00"):  # a lone surrogate's UTF-8, not UTF-8, NUL
            response = await client.get(f"/search?query=a{raw}")
            assert response.status_code in (200, 400), response.text


async def test_history_filters_narrow_the_page(api: Api) -> None:
    group = await _group(api, "ha", "hb")
    async with api.user("ha") as ha, api.user("hb") as hb:
        await _send(ha, group, "a0", "one")
        await _send(hb, group, "b0", "two")
        await _send(ha, group, "a1", "three")
        url = f"/conversations/{group}/messages"
        by_b = await ha.get(url, params={"sender_id": "hb"})
        assert [m["client_id"] for m in by_b.json()["messages"]] == ["b0"]
        texts = await ha.get(url, params={"kind": "text", "limit": 2})
        assert [m["client_id"] for m in texts.json()["messages"]] == ["b0", "a1"]
        earlier = await ha.get(url, params={"kind": "text", "cursor": texts.json()["next"]})
        assert [m["client_id"] for m in earlier.json()["messages"]] == ["a0"]
        assert (await ha.get(url, params={"until": 1})).json()["messages"] == []
        assert len((await ha.get(url, params={"since": 1, "kind": "text"})).json()["messages"]) == 3
        for params, field in (
            ({"kind": "nope"}, "kind"),
            ({"since": "-inf"}, "since"),
            ({"until": "nan"}, "until"),
            ({"sender_id": "x" * 10_000}, "sender_id"),
        ):
            body = problem(await ha.get(url, params=params), 400, "invalid")  # type: ignore[arg-type]
            assert body["field"] == field, (params, body)


async def test_an_export_streams_every_message_line_by_line(api: Api) -> None:
    group = await _group(api, "xa", "xb")
    other = await _group(api, "xa", "xc")
    messaging = api.running.node.messaging.get()
    count = 450  # more than two store pages
    for n in range(count):
        await messaging.send("xa", group, Draft(client_id=f"m{n}", content=f"line {n}\nnext"))
    await messaging.send("xa", other, Draft(client_id="o0", content="elsewhere"))

    token = api.running.token("xa")
    async with httpx.AsyncClient(
        base_url=f"{api.base}/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as raw:
        async with raw.stream("GET", f"/conversations/{group}/export") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(JSON_LINES)
            assert "content-length" not in response.headers  # streamed, not built whole
            assert response.headers["transfer-encoding"] == "chunked"
            total = int(response.headers[TOTAL_HEADER])
            chunks = 0
            lines: list[bytes] = []
            buffer = b""
            async for chunk in response.aiter_raw():
                chunks += 1
                buffer += chunk
                *done, buffer = buffer.split(b"\n")
                lines += done
            assert buffer == b""
        messages = [msgspec.json.decode(line, type=Message) for line in lines]
        ours = [m for m in messages if m.kind != "system"]
        assert [m.client_id for m in ours] == [f"m{n}" for n in range(count)]
        assert ours[0].content == "line 0\nnext"  # a newline in a message stays inside its line
        assert [m.seq for m in messages] == sorted(m.seq for m in messages)
        assert len(messages) == total
        assert chunks >= 3  # a page at a time

    async with api.user("xa") as xa, api.user("xc") as xc:
        everything = await xa.get("/export")  # also checked line by line against the schema
        assert everything.status_code == 200
        ids = {
            msgspec.json.decode(line)["conversation_id"] for line in everything.text.splitlines()
        }
        assert ids == {group, other}
        problem(await xc.get(f"/conversations/{group}/export"), 403, "not_member")
        problem(await xc.get("/conversations/nope/export"), 404, "not_found")
        mine = await xc.get("/export")
        assert {
            msgspec.json.decode(line)["conversation_id"] for line in mine.text.splitlines()
        } == {other}
