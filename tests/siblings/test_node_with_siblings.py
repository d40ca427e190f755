"""A node wired to stand-in siblings, end to end over real sockets.

Push requests go to offline members only (not to those online, muted or
silenced), moderation and media refuse what they refuse before anything is
written, and an inactive user cannot connect.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.gateway.conftest import EACH_STORE, RunningNode, node_on_store, unique
from tests.siblings.conftest import StandIn
from whispr.client import PhoenixClient, ReplyError


def _sibling_env(stand_in: StandIn) -> dict[str, str]:
    return {
        "WHISPR_USER_SERVICE_URL": stand_in.address,
        "WHISPR_NOTIFICATION_SERVICE_URL": stand_in.address,
        "WHISPR_MEDIA_SERVICE_URL": stand_in.address,
        "WHISPR_MODERATION_SERVICE_URL": stand_in.address,
        "WHISPR_SIBLING_DEADLINE_S": "0.5",
    }


@pytest.fixture(params=EACH_STORE)
async def node(
    request: pytest.FixtureRequest, tmp_path: Path, stand_in: StandIn
) -> AsyncIterator[RunningNode]:
    env = _sibling_env(stand_in)
    async with node_on_store(request, tmp_path, env) as running:
        yield running


async def test_pushes_go_to_offline_members_only(node: RunningNode, stand_in: StandIn) -> None:
    messaging = node.node.messaging.get()
    ada, bob, cy, dee, eve = (unique(n) for n in ["ada", "bob", "cy", "dee", "eve"])
    group = await messaging.create_group(ada, "tea", [bob, cy, dee, eve])
    topic = f"conversation:{group.id}"
    await messaging.set_notifications(dee, group.id, muted_until=time.time() + 3600)
    await messaging.set_notifications(eve, group.id, notifications="none")

    async with node.client(ada) as a, node.client(bob):  # bob is online, joined nowhere
        for _ in range(200):  # bob's device is counted in (asynchronously on Redis)
            if await node.node.presence.get().online([bob]) == {bob}:
                break
            await asyncio.sleep(0.01)
        await a.join(topic)
        reply = await a.push(topic, "send_message", {"client_id": "m1", "content": "secret"})
        for _ in range(300):
            if stand_in.pushed:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # time for any wrong push to arrive too

    assert list(stand_in.pushed) == [f"{reply['id']}:{cy}"]
    push = stand_in.pushed[f"{reply['id']}:{cy}"]
    assert (push.user_id, push.conversation_id, push.seq, push.sender_id, push.title) == (
        cy,
        group.id,
        reply["seq"],
        ada,
        "tea",
    )
    assert "secret" not in str(push)  # metadata only

    def scrape() -> str:
        with urllib.request.urlopen(f"{node.http}/metrics", timeout=5) as response:
            return str(response.read().decode())

    body = await asyncio.to_thread(scrape)
    assert any(
        line.startswith("whispr_sibling_pushes") and 'outcome="sent"' in line
        for line in body.splitlines()
    )
    assert 'sibling="notification"' in body  # calls, by sibling


async def test_moderation_and_media_refuse_before_anything_is_written(
    node: RunningNode, stand_in: StandIn
) -> None:
    messaging = node.node.messaging.get()
    ada = unique("ada")
    group = await messaging.create_group(ada, "t", [])
    topic = f"conversation:{group.id}"
    stand_in.bad_media.add("media-bad")
    async with node.client(ada) as a:
        await a.join(topic)
        with pytest.raises(ReplyError) as blocked:
            await a.push(topic, "send_message", {"client_id": "m1", "content": "forbidden!"})
        assert blocked.value.reason == "forbidden"
        assert "a forbidden word" in blocked.value.response["message"]
        attachment = {"id": "media-bad", "mime_type": "image/png", "size": 5, "name": "a.png"}
        with pytest.raises(ReplyError) as bad_media:
            await a.push(
                topic,
                "send_message",
                {"client_id": "m2", "kind": "media", "attachments": [attachment]},
            )
        assert bad_media.value.reason == "invalid"
        # End-to-end encrypted content is not sent to moderation.
        checked = len(stand_in.moderation.requests)
        await a.push(
            topic,
            "send_message",
            {"client_id": "m3", "content": "forbidden ciphertext", "metadata": {"e2e": True}},
        )
        assert len(stand_in.moderation.requests) == checked
        # An edit is checked as a new message is: no way around moderation.
        with pytest.raises(ReplyError) as edited:
            await a.push(topic, "edit_message", {"seq": 1, "content": "now forbidden"})
        assert edited.value.reason == "forbidden"
        history = await a.push(topic, "history", {})
    assert [m["client_id"] for m in history["messages"]] == ["m3"]
    assert history["messages"][0]["content"] == "forbidden ciphertext"


async def test_moderation_down_fails_open_by_default(node: RunningNode, stand_in: StandIn) -> None:
    messaging = node.node.messaging.get()
    ada = unique("ada")
    group = await messaging.create_group(ada, "t", [])
    stand_in.moderation.mode = "fail"
    topic = f"conversation:{group.id}"
    async with node.client(ada) as a:
        await a.join(topic)
        reply = await a.push(topic, "send_message", {"client_id": "m1", "content": "hello"})
    assert reply["seq"] == 1


async def test_an_inactive_user_cannot_connect(node: RunningNode, stand_in: StandIn) -> None:
    zed = unique("zed")
    stand_in.inactive_users.add(zed)
    with pytest.raises(InvalidStatus) as refused:
        async with PhoenixClient.connect(node.url, node.token(zed)):
            pass
    assert refused.value.response.status_code == 403
    ada = unique("ada")
    async with node.client(ada) as client:  # others still can
        await client.join(f"user:{ada}")
    assert [r.user_id for r in stand_in.users.requests] == [zed, ada]
