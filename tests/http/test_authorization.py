"""A user never reads or changes over HTTP what they could not over the socket.

For each role a user can have in a group (owner, admin, member, a removed member, someone
never in it) and each operation of the client API, the operation is made over the socket
on one group and over HTTP on its twin (set up alike): both must answer the same, done or
refused with the same reason. A non-member's socket never gets past the join, so its
outcome there is the join's refusal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import unique
from tests.http.conftest import Api
from whispr.client import ReplyError

pytestmark = pytest.mark.timeout(300)

THUMBS = "\N{THUMBS UP SIGN}"
#: When the scheduled messages of the table are due: long after the test.
LATER = time.time() + 86_400


@dataclass
class Cast:
    owner: str
    admin: str
    member: str
    removed: str
    outsider: str
    #: The seq of the owner's message in the cast's groups.
    root: int = 0


HttpCall = Callable[[httpx.AsyncClient, str, Cast], Awaitable[httpx.Response]]

#: (name, socket event, its payload of the cast, the same operation over HTTP)
OPERATIONS: list[tuple[str, str, Callable[[Cast], dict[str, Any]], HttpCall]] = [
    ("history", "history", lambda c: {}, lambda h, g, c: h.get(f"/conversations/{g}/messages")),
    (
        "send",
        "send_message",
        lambda c: {"client_id": "s", "content": "x"},
        lambda h, g, c: h.post(
            f"/conversations/{g}/messages", json={"content": "x"}, headers={"Idempotency-Key": "s"}
        ),
    ),
    (
        "edit another's",
        "edit_message",
        lambda c: {"seq": c.root, "content": "e"},
        lambda h, g, c: h.patch(f"/conversations/{g}/messages/{c.root}", json={"content": "e"}),
    ),
    (
        "delete another's",
        "delete_message",
        lambda c: {"seq": c.root},
        lambda h, g, c: h.delete(f"/conversations/{g}/messages/{c.root}"),
    ),
    (
        "react",
        "react",
        lambda c: {"seq": c.root, "emoji": THUMBS},
        lambda h, g, c: h.put(f"/conversations/{g}/messages/{c.root}/reactions/{THUMBS}"),
    ),
    (
        "pin",
        "pin",
        lambda c: {"seq": c.root},
        lambda h, g, c: h.put(f"/conversations/{g}/messages/{c.root}/pin"),
    ),
    ("pins", "list_pins", lambda c: {}, lambda h, g, c: h.get(f"/conversations/{g}/pins")),
    (
        "read",
        "mark_read",
        lambda c: {"seq": c.root},
        lambda h, g, c: h.put(f"/conversations/{g}/read", json={"seq": c.root}),
    ),
    (
        "receipts",
        "get_receipts",
        lambda c: {},
        lambda h, g, c: h.get(f"/conversations/{g}/receipts"),
    ),
    (
        "settings",
        "update_member_settings",
        lambda c: {"archived": True},
        lambda h, g, c: h.patch(f"/conversations/{g}/settings", json={"archived": True}),
    ),
    ("members", "list_members", lambda c: {}, lambda h, g, c: h.get(f"/conversations/{g}/members")),
    (
        "add",
        "add_members",
        lambda c: {"user_ids": [f"{c.owner}-new"]},
        lambda h, g, c: h.post(
            f"/conversations/{g}/members", json={"user_ids": [f"{c.owner}-new"]}
        ),
    ),
    (
        "remove the member",
        "remove_member",
        lambda c: {"user_id": c.member},
        lambda h, g, c: h.delete(f"/conversations/{g}/members/{c.member}"),
    ),
    (
        "remove the admin",
        "remove_member",
        lambda c: {"user_id": c.admin},
        lambda h, g, c: h.delete(f"/conversations/{g}/members/{c.admin}"),
    ),
    (
        "promote",
        "set_role",
        lambda c: {"user_id": c.member, "role": "admin"},
        lambda h, g, c: h.patch(f"/conversations/{g}/members/{c.member}", json={"role": "admin"}),
    ),
    (
        "rename",
        "update_conversation",
        lambda c: {"title": "renamed"},
        lambda h, g, c: h.patch(f"/conversations/{g}", json={"title": "renamed"}),
    ),
    (
        "transfer",
        "transfer_ownership",
        lambda c: {"user_id": c.member},
        lambda h, g, c: h.put(f"/conversations/{g}/owner", json={"user_id": c.member}),
    ),
    (
        "filtered history",
        "history",
        lambda c: {"sender_id": c.owner, "kind": "text"},
        lambda h, g, c: h.get(
            f"/conversations/{g}/messages", params={"sender_id": c.owner, "kind": "text"}
        ),
    ),
    (
        "search",
        "search",
        lambda c: {"query": "root"},
        lambda h, g, c: h.get(f"/conversations/{g}/search", params={"query": "root"}),
    ),
    (
        "schedule",
        "schedule_message",
        lambda c: {"client_id": "q", "content": "x", "send_at": LATER},
        lambda h, g, c: h.post(
            f"/conversations/{g}/scheduled",
            json={"content": "x", "send_at": LATER},
            headers={"Idempotency-Key": "q"},
        ),
    ),
    (
        "scheduled",
        "list_scheduled",
        lambda c: {},
        lambda h, g, c: h.get(f"/conversations/{g}/scheduled"),
    ),
    (
        "disappearing",
        "set_disappearing",
        lambda c: {"seconds": 60},
        lambda h, g, c: h.put(f"/conversations/{g}/disappearing", json={"seconds": 60}),
    ),
]

ROLES = ["owner", "admin", "member", "removed", "outsider"]


async def _group(api: Api, cast: Cast) -> str:
    """A group of the cast: an admin, a member, one removed, and the owner's message."""
    async with api.user(cast.owner) as owner:
        created = await owner.post(
            "/conversations",
            json={
                "kind": "group",
                "title": "g",
                "members": [cast.admin, cast.member, cast.removed],
            },
        )
        group = str(created.json()["id"])
        assert (
            await owner.patch(
                f"/conversations/{group}/members/{cast.admin}", json={"role": "admin"}
            )
        ).status_code == 200
        assert (
            await owner.delete(f"/conversations/{group}/members/{cast.removed}")
        ).status_code == 204
        sent = await owner.post(
            f"/conversations/{group}/messages",
            json={"content": "root"},
            headers={"Idempotency-Key": "root"},
        )
        cast.root = sent.json()["seq"]
        return group


async def _over_socket(api: Api, user: str, group: str, event: str, payload: dict[str, Any]) -> str:
    async with api.running.client(user) as client:
        topic = f"conversation:{group}"
        try:
            await client.join(topic, {})
            await client.push(topic, event, payload)
        except ReplyError as refused:
            return refused.reason
        return "ok"


async def _over_http(api: Api, user: str, call: Awaitable[httpx.Response]) -> str:
    response = await call
    if response.status_code < 300:
        return "ok"
    reason: str = response.json()["reason"]
    return reason


@pytest.mark.parametrize("role", ROLES)
async def test_http_allows_what_the_socket_allows(api: Api, role: str) -> None:
    outcomes: dict[str, tuple[str, str]] = {}
    for name, event, payload, http_call in OPERATIONS:
        cast = Cast(*(unique(r) for r in ("owner", "admin", "member", "removed", "outsider")))
        user = getattr(cast, role)
        on_socket, on_http = await _group(api, cast), await _group(api, cast)
        socket_outcome = await _over_socket(api, user, on_socket, event, payload(cast))
        async with api.user(user) as client:
            http_outcome = await _over_http(api, user, http_call(client, on_http, cast))
        outcomes[name] = (socket_outcome, http_outcome)
    differ = {name: pair for name, pair in outcomes.items() if pair[0] != pair[1]}
    assert not differ, f"{role}: (socket, http) differ: {differ}"
    seen = {pair[1] for pair in outcomes.values()}
    expected = {
        "owner": {"ok"},
        "admin": {"ok", "forbidden"},
        "member": {"ok", "forbidden"},
        "removed": {"not_member"},
        "outsider": {"not_member"},
    }[role]
    assert expected <= seen, (role, outcomes)
