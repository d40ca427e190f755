"""Every route of the HTTP API on both stores: statuses, bodies, pagination, idempotency.

Every response is checked against the node's own OpenAPI document (``conftest.Api``).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.http.conftest import Api, problem

pytestmark = pytest.mark.timeout(120)


async def _group(api: Api, owner: str, *members: str, title: str = "g") -> str:
    async with api.user(owner) as client:
        response = await client.post(
            "/conversations", json={"kind": "group", "title": title, "members": list(members)}
        )
        assert response.status_code == 201, response.text
        conversation_id: str = response.json()["id"]
        return conversation_id


async def test_conversations_create_list_get_update(api: Api) -> None:
    async with api.user("alice") as alice:
        direct = await alice.post("/conversations", json={"kind": "direct", "with_user": "bob"})
        assert direct.status_code == 201
        assert direct.json()["kind"] == "direct"
        again = await alice.post("/conversations", json={"kind": "direct", "with_user": "bob"})
        assert again.json()["id"] == direct.json()["id"]  # the one direct conversation
        group = await alice.post(
            "/conversations", json={"kind": "group", "title": "team", "members": ["bob", "carol"]}
        )
        assert group.status_code == 201
        group_id = group.json()["id"]

        listed = await alice.get("/conversations")
        assert listed.status_code == 200
        ids = [row["conversation"]["id"] for row in listed.json()["conversations"]]
        assert set(ids) == {direct.json()["id"], group_id}

        got = await alice.get(f"/conversations/{group_id}")
        assert got.status_code == 200
        assert got.json()["title"] == "team"
        etag = got.headers["etag"]
        unchanged = await alice.get(f"/conversations/{group_id}", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == etag

        updated = await alice.patch(f"/conversations/{group_id}", json={"title": "renamed"})
        assert updated.status_code == 200
        assert updated.json()["title"] == "renamed"
        changed = await alice.get(f"/conversations/{group_id}", headers={"If-None-Match": etag})
        assert changed.status_code == 200  # the validator moved with the change
        assert changed.headers["etag"] != etag

        problem(await alice.get("/conversations/nope"), 404, "not_found")
        body = problem(await alice.post("/conversations", json={"kind": "direct"}), 400, "invalid")
        assert body["field"] == "with_user"


async def test_the_conversation_list_pages_with_its_cursor(api: Api) -> None:
    for other in ("b1", "b2", "b3", "b4", "b5"):
        async with api.user("pager") as client:
            response = await client.post(
                "/conversations", json={"kind": "direct", "with_user": other}
            )
            assert response.status_code == 201
    seen: list[str] = []
    async with api.user("pager") as client:
        cursor = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await client.get("/conversations", params=params)).json()
            pages += 1
            seen += [row["conversation"]["id"] for row in page["conversations"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert len(seen) == 5 == len(set(seen))  # nothing skipped or repeated
        assert pages == 3
        problem(await client.get("/conversations", params={"cursor": "x"}), 400, "invalid")


async def test_members_list_add_role_transfer_remove_leave(api: Api) -> None:
    group_id = await _group(api, "owner", "m1")
    async with api.user("owner") as owner:
        added = await owner.post(
            f"/conversations/{group_id}/members", json={"user_ids": ["m2", "m3"]}
        )
        assert added.status_code == 201
        assert sorted(m["user_id"] for m in added.json()["members"]) == ["m2", "m3"]
        listed = await owner.get(f"/conversations/{group_id}/members", params={"limit": 2})
        first = listed.json()
        assert len(first["members"]) == 2
        assert first["next"] is not None
        rest = await owner.get(
            f"/conversations/{group_id}/members", params={"limit": 2, "cursor": first["next"]}
        )
        names = [m["user_id"] for m in first["members"] + rest.json()["members"]]
        assert sorted(names) == ["m1", "m2", "m3", "owner"]

        promoted = await owner.patch(
            f"/conversations/{group_id}/members/m1", json={"role": "admin"}
        )
        assert promoted.status_code == 200
        assert promoted.json()["role"] == "admin"
        removed = await owner.delete(f"/conversations/{group_id}/members/m3")
        assert removed.status_code == 204
        transfer = await owner.put(f"/conversations/{group_id}/owner", json={"user_id": "m2"})
        assert transfer.status_code == 200
        assert [(m["user_id"], m["role"]) for m in transfer.json()["members"]] == [
            ("m2", "owner"),
            ("owner", "admin"),
        ]
        left = await owner.delete(f"/conversations/{group_id}/members/owner")
        assert left.status_code == 204
        problem(await owner.get(f"/conversations/{group_id}"), 403, "not_member")
    async with api.user("m3") as removed_member:
        problem(await removed_member.get(f"/conversations/{group_id}/messages"), 403, "not_member")


async def test_a_send_is_idempotent_by_its_key(api: Api) -> None:
    group_id = await _group(api, "alice", "bob")
    async with api.user("alice") as alice:
        url = f"/conversations/{group_id}/messages"
        first = await alice.post(url, json={"content": "hi"}, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201
        again = await alice.post(url, json={"content": "hi"}, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 201
        assert again.json() == first.json()
        both = await asyncio.gather(
            *(
                alice.post(url, json={"content": "x"}, headers={"Idempotency-Key": "k-2"})
                for _ in range(5)
            )
        )
        assert len({r.json()["seq"] for r in both}) == 1
        history = (await alice.get(url)).json()["messages"]
        assert [m["client_id"] for m in history] == ["k-1", "k-2"]  # each stored once
        in_body = await alice.post(url, json={"content": "b", "client_id": "k-3"})
        assert in_body.status_code == 201
        assert in_body.json()["client_id"] == "k-3"
        body = problem(await alice.post(url, json={"content": "no key"}), 400, "invalid")
        assert body["field"] == "Idempotency-Key"
        differ = await alice.post(
            url, json={"content": "x", "client_id": "a"}, headers={"Idempotency-Key": "b"}
        )
        problem(differ, 400, "invalid")


async def test_history_pages_back_and_forward(api: Api) -> None:
    group_id = await _group(api, "alice", "bob")
    url = f"/conversations/{group_id}/messages"
    async with api.user("alice") as alice:
        for n in range(7):
            response = await alice.post(
                url, json={"content": f"m{n}"}, headers={"Idempotency-Key": f"c{n}"}
            )
            assert response.status_code == 201
        latest = (await alice.get(url, params={"limit": 3})).json()
        assert [m["seq"] for m in latest["messages"]] == [5, 6, 7]
        back = (await alice.get(url, params={"limit": 3, "cursor": latest["next"]})).json()
        assert [m["seq"] for m in back["messages"]] == [2, 3, 4]
        back = (await alice.get(url, params={"limit": 3, "cursor": back["next"]})).json()
        assert [m["seq"] for m in back["messages"]] == [1]
        assert back["next"] is None
        forward = (await alice.get(url, params={"after_seq": 0, "limit": 4})).json()
        assert [m["seq"] for m in forward["messages"]] == [1, 2, 3, 4]
        forward = (await alice.get(url, params={"limit": 4, "cursor": forward["next"]})).json()
        assert [m["seq"] for m in forward["messages"]] == [5, 6, 7]
        assert forward["next"] is None
        before = (await alice.get(url, params={"before_seq": 3})).json()
        assert [m["seq"] for m in before["messages"]] == [1, 2]
        capped = (await alice.get(url, params={"limit": 10_000})).json()
        assert len(capped["messages"]) == 7  # a page is capped, never refused
        problem(await alice.get(url, params={"limit": 0}), 400, "invalid")
        problem(
            await alice.get(url, params={"cursor": latest["next"], "before_seq": 2}),
            400,
            "invalid",
        )


async def test_edit_delete_react_pin_thread(api: Api) -> None:
    group_id = await _group(api, "alice", "bob")
    base = f"/conversations/{group_id}"
    async with api.user("alice") as alice, api.user("bob") as bob:
        sent = await alice.post(
            f"{base}/messages", json={"content": "hello"}, headers={"Idempotency-Key": "a"}
        )
        seq = sent.json()["seq"]
        edited = await alice.patch(f"{base}/messages/{seq}", json={"content": "hello!"})
        assert edited.status_code == 200
        assert edited.json()["content"] == "hello!"
        assert edited.json()["edited_at"] is not None
        problem(await bob.patch(f"{base}/messages/{seq}", json={"content": "no"}), 403, "forbidden")

        reacted = await bob.put(f"{base}/messages/{seq}/reactions/%F0%9F%91%8D")
        assert reacted.status_code == 200
        assert reacted.json()["reactions"] == {"\N{THUMBS UP SIGN}": ["bob"]}
        unreacted = await bob.delete(f"{base}/messages/{seq}/reactions/%F0%9F%91%8D")
        assert unreacted.status_code == 200
        assert unreacted.json()["reactions"] == {}

        pinned = await alice.put(f"{base}/messages/{seq}/pin")
        assert pinned.status_code == 200
        assert pinned.json()["pinned"] is True
        pins = (await bob.get(f"{base}/pins")).json()["messages"]
        assert [m["seq"] for m in pins] == [seq]
        unpinned = await alice.delete(f"{base}/messages/{seq}/pin")
        assert unpinned.json()["pinned"] is False

        reply = await bob.post(
            f"{base}/messages",
            json={"content": "re", "reply_to": seq},
            headers={"Idempotency-Key": "r"},
        )
        assert reply.status_code == 201
        thread = (await alice.get(f"{base}/messages/{seq}/replies")).json()
        assert [m["seq"] for m in thread["messages"]] == [reply.json()["seq"]]
        problem(await alice.get(f"{base}/messages/999/replies"), 404, "not_found")

        hidden = await bob.delete(f"{base}/messages/{seq}", params={"for_everyone": "false"})
        assert hidden.status_code == 204
        bob_sees = (await bob.get(f"{base}/messages")).json()["messages"]
        assert seq not in [m["seq"] for m in bob_sees]
        deleted = await alice.delete(f"{base}/messages/{seq}")
        assert deleted.status_code == 204
        alice_sees = (await alice.get(f"{base}/messages")).json()["messages"]
        assert [m["deleted"] for m in alice_sees if m["seq"] == seq] == [True]
        problem(await alice.patch(f"{base}/messages/999", json={"content": "x"}), 404, "not_found")


async def test_marks_and_receipts(api: Api) -> None:
    group_id = await _group(api, "alice", "bob")
    base = f"/conversations/{group_id}"
    async with api.user("alice") as alice, api.user("bob", device_id="phone") as bob:
        for n in range(3):
            await alice.post(
                f"{base}/messages", json={"content": "m"}, headers={"Idempotency-Key": f"{n}"}
            )
        read = await bob.put(f"{base}/read", json={"seq": 2})
        assert read.status_code == 200
        assert read.json() == {"seq": 2}
        beyond = await bob.put(f"{base}/read", json={"seq": 99})
        assert beyond.json() == {"seq": 3}  # capped at the last message
        back = await bob.put(f"{base}/read", json={"seq": 1})
        assert back.json() == {"seq": 3}  # never moves back
        delivered = await bob.put(f"{base}/delivered", json={"seq": 2})
        assert delivered.json() == {"seq": 2}
        receipts = (await alice.get(f"{base}/receipts")).json()["receipts"]
        by_user = {r["user_id"]: r for r in receipts}
        assert by_user["bob"]["read_seq"] == 3
        assert by_user["bob"]["delivered_seq"] == 2
        one = (await alice.get(f"{base}/receipts", params={"user_id": "bob"})).json()
        assert [r["user_id"] for r in one["receipts"]] == ["bob"]
        problem(await alice.get(f"{base}/receipts", params={"user_id": "zed"}), 404, "not_found")
        listed = (await bob.get("/conversations")).json()["conversations"]
        assert [row["unread_count"] for row in listed] == [0]


async def test_the_server_api(api: Api) -> None:
    async with api.service() as backend:
        created = await backend.post(
            "/server/conversations",
            json={"kind": "group", "creator_id": "ops", "member_ids": ["u1"], "title": "ops"},
        )
        assert created.status_code == 201
        conversation_id = created.json()["conversation"]["id"]
        assert sorted(m["user_id"] for m in created.json()["members"]) == ["ops", "u1"]
        url = f"/server/conversations/{conversation_id}/system-messages"
        posted = await backend.post(url, json={"event": "welcome", "client_id": "w1"})
        assert posted.status_code == 201
        assert posted.json()["kind"] == "system"
        assert (
            await backend.post(url, json={"event": "welcome", "client_id": "w1"})
        ).json() == posted.json()
        problem(
            await backend.post(url, json={"event": "no spaces", "client_id": "w2"}), 400, "invalid"
        )

        published = await backend.post(
            "/server/publish",
            json={"topic": "user", "user_id": "u1", "event": "promo", "payload": {"a": 1}},
        )
        assert published.status_code == 200
        assert published.json() == {"topic": "user:u1"}
        reserved = await backend.post(
            "/server/publish", json={"topic": "user", "user_id": "u1", "event": "read"}
        )
        problem(reserved, 400, "invalid")
        presence = await backend.get(
            "/server/presence", params=[("user_ids", "u1"), ("user_ids", "u2")]
        )
        assert [u["user_id"] for u in presence.json()["users"]] == ["u1", "u2"]
        disconnected = await backend.post("/server/disconnect", json={"user_id": "u1"})
        assert disconnected.status_code == 204

    async with api.user("u1") as u1:
        assert (await u1.get("/conversations")).status_code == 200
        async with api.service() as backend:
            revoked = await backend.post(
                "/server/revocations", json={"kind": "user", "user_id": "u1"}
            )
            assert revoked.status_code == 201
        problem(await u1.get("/conversations"), 401, "unauthorized")  # the same token, now revoked

    async with api.user("u1") as user:  # a user token is no service token
        problem(await user.post("/server/disconnect", json={"user_id": "u1"}), 401, "unauthorized")
    async with api.service() as backend:  # nor a service token a user's
        problem(await backend.get("/conversations"), 401, "unauthorized")


async def test_what_http_does_reaches_the_members_sockets(api: Api) -> None:
    group_id = await _group(api, "alice", "bob")
    topic = f"conversation:{group_id}"
    async with api.running.client("bob") as bob, api.user("alice") as alice:
        await bob.join(topic, {})
        await bob.join("user:bob")
        sent = await alice.post(
            f"/conversations/{group_id}/messages",
            json={"content": "over http"},
            headers={"Idempotency-Key": "live"},
        )
        event = await bob.next_event(topic, "new_message")
        assert event.payload["message"]["content"] == "over http"
        assert event.payload["message"]["seq"] == sent.json()["seq"]
        await alice.put(f"/conversations/{group_id}/read", json={"seq": sent.json()["seq"]})
        read = await bob.next_event(topic, "read")
        assert read.payload == {
            "conversation_id": group_id,
            "user_id": "alice",
            "seq": sent.json()["seq"],
        }


async def test_own_settings(api: Api) -> None:
    group_id = await _group(api, "alice", "bob")
    async with api.user("bob") as bob, api.running.client("bob") as device:
        await device.join("user:bob")
        before = await bob.get(f"/conversations/{group_id}/settings")
        assert before.status_code == 200
        assert before.json()["muted_until"] is None
        changed = await bob.patch(
            f"/conversations/{group_id}/settings",
            json={"muted_until": "forever", "archived": True},
        )
        assert changed.status_code == 200
        assert changed.json()["muted_until"] == "forever"
        assert changed.json()["archived"] is True
        assert changed.json()["notifications"] == "all"  # left as it was
        told = await device.next_event("user:bob", "member_settings_updated")
        assert told.payload["settings"] == changed.json()
        problem(await bob.patch(f"/conversations/{group_id}/settings", json={}), 400, "invalid")
        problem(
            await bob.patch(f"/conversations/{group_id}/settings", json={"pin_order": 2**64}),
            400,
            "invalid",
        )
