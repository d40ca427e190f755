"""The end-to-end key directory over HTTP on both stores, and an end-to-end send through
the send route: a device speaks for itself only, a user removes only their own devices,
bundle fetches share the socket's budget, and envelopes that do not match the members'
devices are refused as on the socket (409 ``mismatched_devices``, 410 ``stale_devices``).

Every response read through ``Api`` clients is checked against the node's OpenAPI document.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.signal_client import Device
from tests.gateway.conftest import EACH_STORE, node_on_store, unique
from tests.http.conftest import Api, problem
from whispr.client import ReplyError

pytestmark = pytest.mark.timeout(180)


async def _device(client: httpx.AsyncClient, user_id: str, device_id: str) -> Device:
    """A device registered with real keys (X3DH, as a Signal client makes them)."""
    device = Device(user_id, device_id)
    registered = await client.put(
        "/devices", json={"registration_id": device.registration_id, "name": "phone"}
    )
    assert registered.status_code == 200, registered.text
    assert registered.json()["device_id"] == device_id
    uploaded = await client.post("/devices/keys", json=device.upload_payload(one_time=3))
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"one_time_prekeys": 3}
    return device


def _envelope(user_id: str, device_id: str, registration_id: int) -> dict[str, Any]:
    ciphertext = base64.b64encode(b"opaque to the server").decode()
    return {
        "user_id": user_id,
        "device_id": device_id,
        "registration_id": registration_id,
        "type": "prekey",
        "ciphertext": ciphertext,
    }


async def test_devices_keys_and_bundles(api: Api) -> None:
    async with api.user("ka", "ka-phone") as ka, api.user("kb", "kb-phone") as kb:
        phone = await _device(ka, "ka", "ka-phone")
        listed = await ka.get("/devices")
        assert [d["device_id"] for d in listed.json()["devices"]] == ["ka-phone"]
        assert listed.json()["devices"][0]["one_time_prekeys"] == 3
        assert (await kb.get("/devices")).json()["devices"] == []  # one's own only

        fetched = await kb.get("/users/ka/bundles")
        assert fetched.status_code == 200, fetched.text
        [bundle] = fetched.json()["bundles"]
        assert bundle["registration_id"] == phone.registration_id
        assert bundle["one_time_prekey"] is not None
        other = (await kb.get("/users/ka/bundles")).json()["bundles"][0]["one_time_prekey"]
        assert other["key_id"] != bundle["one_time_prekey"]["key_id"]  # each handed out once
        none = await kb.get("/users/ka/bundles", params={"device_ids": ["nope"]})
        assert none.json()["bundles"] == []
        assert (await kb.get("/users/nobody/bundles")).json()["bundles"] == []

        # Another user's device is not theirs to remove; the owner removes it.
        problem(await kb.delete("/devices/ka-phone"), 404, "not_found")
        assert len((await ka.get("/devices")).json()["devices"]) == 1
        assert (await ka.delete("/devices/ka-phone")).status_code == 204
        assert (await ka.get("/devices")).json()["devices"] == []
        problem(await ka.delete("/devices/ka-phone"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"registration_id": 2**64}, "registration_id"),
        ({"registration_id": -1}, "registration_id"),
        ({"registration_id": "7"}, "registration_id"),
        ({"registration_id": 7, "name": "a\x00b"}, "name"),
        ({"registration_id": 7, "name": "x" * 100_000}, "name"),
        ({"name": "x"}, "registration_id"),
        ({"registration_id": 7, "device_id": "other"}, "device_id"),
    ],
)
async def test_bad_registrations_are_refused_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    async with api.user("ra", "ra-phone") as ra:
        response = await ra.put("/devices", json=body)
        assert response.status_code in (400, 413), response.text
        if response.status_code == 400:
            assert problem(response, 400, "invalid")["field"] == field
        assert (await ra.get("/devices")).json()["devices"] == []


async def test_bad_keys_are_refused_naming_the_field(api: Api) -> None:
    async with api.user("ua", "ua-phone") as ua:
        unregistered = await ua.post(
            "/devices/keys", json=Device("ua", "ua-phone").upload_payload()
        )
        assert problem(unregistered, 404, "not_found")["field"] == "device_id"
        device = await _device(ua, "ua", "ua-phone")
        payload = device.upload_payload(one_time=1)
        for change, field in (
            ({"identity_key": "!!not base64!!"}, "identity_key"),
            ({"one_time_prekeys": [{"key_id": 2**64, "public_key": "AA=="}]}, "one_time_prekeys"),
            (
                {"signed_prekey": {**payload["signed_prekey"], "signature": "AAAA"}},
                "signed_prekey",
            ),
        ):
            body = problem(
                await ua.post("/devices/keys", json={**payload, **change}), 400, "invalid"
            )
            assert body["field"] == field, (change, body)
        problem(await ua.get("/users/%00/bundles"), 400, "invalid")
        many = await ua.get(
            "/users/ua/bundles", params={"device_ids": [str(n) for n in range(500)]}
        )
        assert problem(many, 400, "invalid")["field"] == "device_ids"


async def test_an_end_to_end_send_through_the_send_route(api: Api) -> None:
    async with api.user("ea", "ea-phone") as ea, api.user("eb", "eb-phone") as eb:
        await _device(ea, "ea", "ea-phone")
        peer = await _device(eb, "eb", "eb-phone")
        direct = await ea.post("/conversations", json={"kind": "direct", "with_user": "eb"})
        url = f"/conversations/{direct.json()['id']}/messages"

        wrong = await ea.post(
            url,
            json={"metadata": {"e2e": True}, "envelopes": [_envelope("eb", "eb-tablet", 1)]},
            headers={"Idempotency-Key": "e1"},
        )
        body = problem(wrong, 409, "mismatched_devices")
        assert body["missing"] == {"eb": ["eb-phone"]}
        assert body["extra"] == {"eb": ["eb-tablet"]}
        stale = await ea.post(
            url,
            json={
                "metadata": {"e2e": True},
                "envelopes": [_envelope("eb", "eb-phone", peer.registration_id + 1)],
            },
            headers={"Idempotency-Key": "e1"},
        )
        assert problem(stale, 410, "stale_devices")["stale"] == {"eb": ["eb-phone"]}

        envelope = _envelope("eb", "eb-phone", peer.registration_id)
        token = base64.b64encode(b"blind-token-0001").decode()
        sent = await ea.post(
            url,
            json={"metadata": {"e2e": True}, "envelopes": [envelope], "blind_tokens": [token]},
            headers={"Idempotency-Key": "e1"},
        )
        assert sent.status_code == 201, sent.text
        again = await ea.post(
            url,
            json={"metadata": {"e2e": True}, "envelopes": [envelope]},
            headers={"Idempotency-Key": "e1"},
        )
        assert again.json()["seq"] == sent.json()["seq"]
        history = (await eb.get(url)).json()["messages"]
        assert [m["client_id"] for m in history if m["kind"] != "system"] == ["e1"]
        assert all(m["content"] == "" for m in history if m["client_id"] == "e1")

        # Its blind-index tokens find it, for a member only.
        search = f"/conversations/{direct.json()['id']}/search"
        found = await eb.get(search, params={"blind_tokens": [token]})
        assert found.status_code == 200, found.text
        assert found.json()["seqs"] == [sent.json()["seq"]]
        other = base64.b64encode(b"blind-token-0002").decode()
        assert (await eb.get(search, params={"blind_tokens": [token, other]})).json()["seqs"] == []
        async with api.user("ec") as ec:
            problem(await ec.get(search, params={"blind_tokens": [token]}), 403, "not_member")


@pytest.mark.parametrize("store", EACH_STORE)
async def test_the_socket_and_http_share_the_bundle_fetch_budget(
    request: pytest.FixtureRequest, tmp_path: Path, store: str
) -> None:
    request.param = store  # node_on_store reads the store from the request
    env = {"WHISPR_RATE_LIMIT_BUNDLE_FETCH_PER_MINUTE": "3"}
    async with node_on_store(request, tmp_path, env) as running:
        ada = unique("ada")
        base = f"http://127.0.0.1:{running.node.http.get().port}/api/v1"
        headers = {"Authorization": f"Bearer {running.token(ada)}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=headers) as http,
            running.client(ada) as socket,
        ):
            topic = f"user:{ada}"
            await socket.join(topic, {})
            for _ in range(2):
                await socket.push(topic, "get_bundles", {"user_id": "someone"})
            assert (await http.get("/users/someone/bundles")).status_code == 200
            refused = await http.get("/users/someone/bundles")
            body = problem(refused, 429, "rate_limited")
            assert body["limit"] == 3
            assert int(refused.headers["retry-after"]) >= 1
            with pytest.raises(ReplyError) as caught:
                await socket.push(topic, "get_bundles", {"user_id": "someone"})
            assert caught.value.reason == "rate_limited"
