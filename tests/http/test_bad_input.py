"""Input at its extremes over HTTP: refused with a problem naming the field, never a crash.

Huge integers (past 64 bits), NUL characters, lone surrogates, empty and enormous values,
bodies that are not JSON or too large, tokens that are missing, malformed or expired: each
gets a 4xx problem document (checked against the OpenAPI document like every response),
on both stores, and the node serves the next request.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import Api, problem

pytestmark = pytest.mark.timeout(120)

HUGE = 2**64
PAST_SEQ = 2**63


async def _setup(api: Api) -> str:
    async with api.user("alice") as alice:
        response = await alice.post(
            "/conversations", json={"kind": "group", "title": "g", "members": ["bob"]}
        )
        conversation_id: str = response.json()["id"]
        sent = await alice.post(
            f"/conversations/{conversation_id}/messages",
            json={"content": "x"},
            headers={"Idempotency-Key": "one"},
        )
        assert sent.status_code == 201
        return conversation_id


#: (method, path under the conversation, request options, status, reason, field or None)
CASES: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
    ("PUT", "/read", {"json": {"seq": HUGE}}, 400, "invalid", "seq"),
    ("PUT", "/read", {"json": {"seq": PAST_SEQ}}, 400, "invalid", "seq"),
    ("PUT", "/read", {"json": {"seq": "1"}}, 400, "invalid", "seq"),
    ("PUT", "/read", {"json": {"seq": 1.5}}, 400, "invalid", "seq"),
    ("PUT", "/read", {"json": {"seq": True}}, 400, "invalid", "seq"),
    ("PATCH", "/settings", {"json": {"archived": "true"}}, 400, "invalid", "archived"),
    (
        "PUT",
        "/read",
        {"content": b"", "headers": {"content-type": "application/json"}},
        400,
        "invalid",
        None,
    ),
    ("PUT", "/read", {"json": {"seq": -1}}, 400, "invalid", "seq"),
    ("PUT", "/read", {"json": {"seq": 1, "extra": 1}}, 400, "invalid", "extra"),
    ("PUT", "/read", {"json": {}}, 400, "invalid", "seq"),
    (
        "PUT",
        "/read",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        400,
        "invalid",
        None,
    ),
    (
        "PUT",
        "/read",
        {"content": b"[1]", "headers": {"content-type": "application/json"}},
        400,
        "invalid",
        None,
    ),
    ("PATCH", f"/messages/{PAST_SEQ}", {"json": {"content": "x"}}, 400, "invalid", "seq"),
    ("PATCH", f"/messages/{HUGE}", {"json": {"content": "x"}}, 400, "invalid", "seq"),
    ("PATCH", "/messages/1", {"json": {"content": "a\x00b"}}, 400, "invalid", "content"),
    (
        "PATCH",
        "/messages/1",
        {"content": b'{"content": "\\ud800"}', "headers": {"content-type": "application/json"}},
        400,
        "invalid",
        None,
    ),
    ("GET", "/messages", {"params": {"before_seq": str(PAST_SEQ)}}, 400, "invalid", "before_seq"),
    ("GET", "/messages", {"params": {"after_seq": str(HUGE)}}, 400, "invalid", "after_seq"),
    ("GET", "/messages", {"params": {"limit": str(-HUGE)}}, 400, "invalid", "limit"),
    ("GET", "/messages", {"params": {"cursor": "\x00"}}, 400, "invalid", "cursor"),
    ("GET", "/messages", {"params": {"cursor": "a" * 10_000}}, 400, "invalid", "cursor"),
    (
        "POST",
        "/messages",
        {"json": {"content": "a\x00"}, "headers": {"Idempotency-Key": "n"}},
        400,
        "invalid",
        "content",
    ),
    (
        "POST",
        "/messages",
        {
            "content": b'{"content": "\\udc00"}',
            "headers": {"content-type": "application/json", "Idempotency-Key": "s"},
        },
        400,
        "invalid",
        None,
    ),
    (
        "POST",
        "/messages",
        {"json": {"content": "x", "reply_to": PAST_SEQ}, "headers": {"Idempotency-Key": "r"}},
        400,
        "invalid",
        "reply_to",
    ),
    (
        "POST",
        "/messages",
        {"json": {"content": "x"}, "headers": {"Idempotency-Key": ""}},
        400,
        "invalid",
        "client_id",
    ),
    (
        "POST",
        "/messages",
        {"json": {"content": "x"}, "headers": {"Idempotency-Key": "k" * 10_000}},
        400,
        "invalid",
        "client_id",
    ),
    (
        "POST",
        "/messages",
        {"json": {"content": "x" * 20_000}, "headers": {"Idempotency-Key": "big"}},
        413,
        "too_large",
        None,
    ),
    (
        "POST",
        "/messages",
        {"json": {"content": "x", "kind": "system"}, "headers": {"Idempotency-Key": "sys"}},
        400,
        "invalid",
        "kind",
    ),
    ("PUT", "/messages/1/reactions/%00", {}, 400, "invalid", "emoji"),
    ("PUT", "/messages/1/reactions/" + "a" * 300, {}, 400, "invalid", "emoji"),
    ("POST", "/members", {"json": {"user_ids": ["a\x00"]}}, 400, "invalid", "user_ids"),
    ("POST", "/members", {"json": {"user_ids": ["x" * 1000]}}, 400, "invalid", "user_ids"),
    ("PATCH", "", {"json": {"title": "t\x00"}}, 400, "invalid", "title"),
    (
        "PATCH",
        "",
        {"content": b'{"title": "\\ud800"}', "headers": {"content-type": "application/json"}},
        400,
        "invalid",
        None,
    ),
    ("GET", "/receipts", {"params": {"user_id": "\x00"}}, 400, "invalid", "user_id"),
]


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0]} {c[1][:30]} {i}" for i, c in enumerate(CASES)]
)
async def test_a_bad_request_is_refused_naming_its_field(
    api: Api, case: tuple[str, str, dict[str, Any], int, str, str | None]
) -> None:
    method, path, options, status, reason, field = case
    conversation_id = await _setup(api)
    async with api.user("alice") as alice:
        response = await alice.request(method, f"/conversations/{conversation_id}{path}", **options)
        body = problem(response, status, reason)
        if field is not None:
            assert body.get("field") == field, body
        assert (await alice.get(f"/conversations/{conversation_id}")).status_code == 200


async def test_an_enormous_body_is_413(api: Api) -> None:
    conversation_id = await _setup(api)
    limit = api.running.settings.http_max_body_bytes
    async with api.user("alice") as alice:
        response = await alice.post(
            f"/conversations/{conversation_id}/messages",
            content=b'{"content": "' + b"x" * (limit + 1) + b'"}',
            headers={"content-type": "application/json", "Idempotency-Key": "huge"},
        )
        problem(response, 413, "too_large")


@pytest.mark.parametrize("conversation_id", ["%00", "%ED%A0%80", "x" * 100, "%F0%9F%91%8D"])
async def test_an_odd_conversation_id_is_not_found(api: Api, conversation_id: str) -> None:
    async with api.user("alice") as alice:
        response = await alice.get(f"/conversations/{conversation_id}")
        assert response.status_code in (400, 404), response.text
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c"],
)
async def test_a_missing_or_bad_token_is_401(api: Api, authorization: str | None) -> None:
    async with api.anonymous() as client:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await client.get("/conversations", headers=headers)
        problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_an_expired_token_is_401(api: Api) -> None:
    token = api.running.token("alice", ttl_s=-60)
    async with api.anonymous() as client:
        response = await client.get("/conversations", headers={"Authorization": f"Bearer {token}"})
        body = problem(response, 401, "unauthorized")
        assert "expired" in body["detail"]


async def test_an_unknown_route_and_method_are_problems(api: Api) -> None:
    async with api.user("alice") as alice:
        response = await alice.get("/nothing-here")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        response = await alice.delete("/conversations")
        assert response.status_code == 405
        assert response.json()["status"] == 405


async def test_who_calls_is_checked_before_the_body(api: Api) -> None:
    async with api.anonymous() as client:
        response = await client.post(
            "/conversations", content=b"{not json", headers={"content-type": "application/json"}
        )
        problem(response, 401, "unauthorized")
        response = await client.post("/server/publish", json={"topic": "nowhere"})
        problem(response, 401, "unauthorized")
