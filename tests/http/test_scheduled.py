"""Scheduled messages and the disappearing setting over HTTP on both stores: statuses,
idempotency by ``Idempotency-Key``, a member's own schedules only, bad input at its
extremes; a past ``send_at`` is sent by the scheduler as over the socket.

Every response read through ``Api`` clients is checked against the node's OpenAPI document.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.http.conftest import Api, problem

pytestmark = pytest.mark.timeout(180)


async def _group(api: Api, owner: str, *members: str) -> str:
    async with api.user(owner) as client:
        response = await client.post(
            "/conversations", json={"kind": "group", "title": "g", "members": list(members)}
        )
        assert response.status_code == 201, response.text
        conversation_id: str = response.json()["id"]
        return conversation_id


async def test_schedule_list_get_change_cancel(api: Api) -> None:
    group = await _group(api, "qa", "qb")
    url = f"/conversations/{group}/scheduled"
    later = time.time() + 3600
    async with api.user("qa") as qa, api.user("qb") as qb, api.user("qc") as qc:
        made = await qa.post(
            url, json={"content": "later", "send_at": later}, headers={"Idempotency-Key": "k1"}
        )
        assert made.status_code == 201, made.text
        schedule = made.json()
        assert schedule["draft"]["client_id"] == "k1"
        again = await qa.post(
            url, json={"content": "later", "send_at": later}, headers={"Idempotency-Key": "k1"}
        )
        assert again.json()["id"] == schedule["id"]  # one schedule for one key
        listed = await qa.get(url)
        assert [s["id"] for s in listed.json()["scheduled"]] == [schedule["id"]]
        one = f"{url}/{schedule['id']}"
        assert (await qa.get(one)).json()["draft"]["content"] == "later"

        changed = await qa.patch(one, json={"content": "sooner", "send_at": later - 60})
        assert changed.status_code == 200, changed.text
        assert changed.json()["draft"]["content"] == "sooner"
        assert changed.json()["send_at"] == pytest.approx(later - 60)

        # Another member neither sees nor touches it; a non-member is refused the conversation.
        assert (await qb.get(url)).json()["scheduled"] == []
        problem(await qb.get(one), 404, "not_found")
        problem(await qb.patch(one, json={"content": "mine"}), 404, "not_found")
        problem(await qb.delete(one), 404, "not_found")
        problem(await qc.get(url), 403, "not_member")
        problem(
            await qc.post(
                url, json={"content": "x", "send_at": later}, headers={"Idempotency-Key": "x"}
            ),
            403,
            "not_member",
        )
        assert (await qa.get(one)).json()["draft"]["content"] == "sooner"

        cancelled = await qa.delete(one)
        assert cancelled.status_code == 204
        problem(await qa.get(one), 404, "not_found")
        problem(await qa.delete(one), 404, "not_found")


async def test_a_due_schedule_is_sent(api: Api) -> None:
    group = await _group(api, "da", "db")
    async with api.user("da") as da:
        made = await da.post(
            f"/conversations/{group}/scheduled",
            json={"content": "now", "send_at": 0},
            headers={"Idempotency-Key": "due"},
        )
        assert made.status_code == 201, made.text
        for _ in range(100):
            history = (await da.get(f"/conversations/{group}/messages")).json()["messages"]
            sent = [m for m in history if m["content"] == "now"]
            if sent:  # sent as its author, recording its schedule
                assert sent[0]["sender_id"] == "da"
                assert sent[0]["metadata"]["scheduled"]["id"] == made.json()["id"]
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the due schedule was not sent")


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"content": "x"}, {"Idempotency-Key": "a"}, "send_at"),
        ({"content": "x", "send_at": 2**64}, {"Idempotency-Key": "a"}, "send_at"),
        ({"content": "x", "send_at": -1}, {"Idempotency-Key": "a"}, "send_at"),
        ({"content": "x", "send_at": "soon"}, {"Idempotency-Key": "a"}, "send_at"),
        ({"content": "x", "send_at": 1}, {}, "Idempotency-Key"),
        (
            {"content": "x", "send_at": 1, "client_id": "b"},
            {"Idempotency-Key": "a"},
            "Idempotency-Key",
        ),
        ({"content": "a\x00b", "send_at": 1}, {"Idempotency-Key": "a"}, "content"),
        ({"content": "x", "send_at": 1, "ttl": 2**64}, {"Idempotency-Key": "a"}, "ttl"),
        ({"content": "x", "send_at": 1, "nope": 1}, {"Idempotency-Key": "a"}, "nope"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field(
    api: Api, body: dict[str, object], headers: dict[str, str], field: str
) -> None:
    group = await _group(api, "ba", "bb")
    async with api.user("ba") as ba:
        response = await ba.post(f"/conversations/{group}/scheduled", json=body, headers=headers)
        assert problem(response, 400, "invalid").get("field") == field
        assert (await ba.get(f"/conversations/{group}/scheduled")).json()["scheduled"] == []


async def test_bad_changes_are_refused_naming_the_field(api: Api) -> None:
    group = await _group(api, "ca", "cb")
    url = f"/conversations/{group}/scheduled"
    async with api.user("ca") as ca:
        made = await ca.post(
            url,
            json={"send_at": time.time() + 60, "content": "x"},
            headers={"Idempotency-Key": "c"},
        )
        one = f"{url}/{made.json()['id']}"
        problem(await ca.patch(one, json={}), 400, "invalid")
        for body, field in (
            ({"send_at": float("1e300")}, "send_at"),
            ({"content": "\x00"}, "content"),
            ({"kind": "system"}, "kind"),
            ({"schedule_id": "other"}, "schedule_id"),
        ):
            assert problem(await ca.patch(one, json=body), 400, "invalid")["field"] == field
        # A change's bad value is named whether or not the schedule exists, as on the socket.
        missing = await ca.patch(f"{url}/nope", json={"content": "\x00"})
        assert problem(missing, 400, "invalid")["field"] == "content"
        problem(await ca.patch(f"{url}/nope", json={"content": "y"}), 404, "not_found")


async def test_disappearing_is_set_as_the_role_allows(api: Api) -> None:
    group = await _group(api, "wa", "wb")
    url = f"/conversations/{group}/disappearing"
    async with api.user("wa") as wa, api.user("wb") as wb, api.user("wc") as wc:
        set_ = await wa.put(url, json={"seconds": 60})
        assert set_.status_code == 200, set_.text
        assert set_.json()["id"] == group
        problem(await wb.put(url, json={"seconds": 5}), 403, "forbidden")
        problem(await wc.put(url, json={"seconds": 5}), 403, "not_member")
        for seconds in (-1, 2**64, 31_622_401, "60", True):
            body = problem(await wa.put(url, json={"seconds": seconds}), 400, "invalid")
            assert body["field"] == "seconds", (seconds, body)
        off = await wa.put(url, json={"seconds": None})
        assert off.status_code == 200
        problem(await wa.put(url, json={}), 400, "invalid")
